"""``lmsieve train-proxy``: train a small proxy LM on documents (or fine-tune one on a target)."""
from __future__ import annotations

import time

from lmsieve.features.proxy_lm.config import ModelConfig, TokenizerConfig, TrainConfig

_M, _T, _K = ModelConfig(), TrainConfig(), TokenizerConfig()


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train-proxy", help="train a small Llama proxy LM on CPU or GPU (or fine-tune any causal LM with --init)",
        description="Train a proxy language model (a Hugging Face LlamaForCausalLM) on --data and save it to --out "
                    "with save_pretrained (config.json, model.safetensors, tokenizer.json, lmsieve.json). With "
                    "--init MODEL (a proxy, a local HF causal LM directory or a fetched name such as smollm2-135m), "
                    "fine-tune that model on --data for --epochs epochs instead (CoLoR-Filter's conditional model).",
    )
    p.add_argument("--data", required=True, nargs="+", metavar="P", help="training documents (Parquet with id/text)")
    p.add_argument("--out", required=True, metavar="DIR", help="checkpoint directory to write")
    from lmsieve.cli.common import add_column_args

    add_column_args(p, target=False)
    p.add_argument("--init", metavar="MODEL", help="fine-tune this model (dir or fetched name) instead of training "
                                                   "from scratch")
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (with --init; default 1)")
    p.add_argument("--max-docs", type=int, help="train on a seeded sample of at most this many documents")
    g = p.add_argument_group("model")
    g.add_argument("--layers", type=int, default=_M.n_layer, help=f"default {_M.n_layer}")
    g.add_argument("--width", type=int, default=_M.d_model, help=f"d_model (default {_M.d_model})")
    g.add_argument("--heads", type=int, default=_M.n_head, help=f"default {_M.n_head}")
    g.add_argument("--context", type=int, default=_M.context, help=f"default {_M.context}")
    g.add_argument("--tokenizer", choices=["bpe", "byte"], default=_K.kind, help=f"default {_K.kind}")
    g.add_argument("--vocab-size", type=int, default=_K.vocab_size, help=f"BPE vocabulary (default {_K.vocab_size})")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=int, default=_T.steps, help=f"default {_T.steps} (ignored with --init)")
    t.add_argument("--batch-size", type=int, default=None, help=f"sequences per step (default {_T.batch_size})")
    t.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {_T.lr}; 1e-3 with --init)")
    t.add_argument("--warmup", type=int, default=None, help=f"warmup steps (default {_T.warmup_steps}; 20 with --init)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--save-optimizer", action="store_true", help="also save the AdamW state (MATES probes need it)")
    s = p.add_argument_group("sparse autoencoder (optional, saved under OUT/sae)")
    s.add_argument("--sae-latents", type=int, default=0, help="train a TopK SAE with this many latents after the LM")
    s.add_argument("--sae-k", type=int, default=32, help="latents kept per token (default 32)")
    s.add_argument("--sae-layer", type=int, default=-2, help="hidden_states index (default -2: last block's input)")
    s.add_argument("--sae-steps", type=int, default=1000)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def _sample(docs, max_docs: int | None, seed: int):
    import numpy as np

    from lmsieve.sampling.hashing import stable_hash64

    if not max_docs or docs.num_rows <= max_docs:
        return docs
    keep = np.sort(np.argsort(stable_hash64(seed, docs.column("id")), kind="stable")[:max_docs])
    return docs.take(keep)


def run(args) -> int:
    from lmsieve.cli.common import one_or_many
    from lmsieve.features.proxy_lm import finetune, load_proxy, save_proxy, train_proxy
    from lmsieve.io.inputs import load_docs

    from lmsieve.cli.common import check_out, column_kw

    check_out(args.out, "dir")
    docs, _ = load_docs(one_or_many(args.data), name="data", columns=["id", "text"], **column_kw(args))
    docs = _sample(docs, args.max_docs, args.seed)
    over = {k: v for k, v in {"batch_size": args.batch_size, "lr": args.lr, "warmup_steps": args.warmup}.items()
            if v is not None}
    t0 = time.perf_counter()
    if args.init:
        lm = load_proxy(args.init, device=args.device, with_optimizer=False)
        finetune(lm, docs, {**over, "seed": args.seed}, epochs=args.epochs, progress=not args.no_progress)
    else:
        model = {"n_layer": args.layers, "d_model": args.width, "n_head": args.heads, "context": args.context}
        lm = train_proxy(docs, model, {**over, "steps": args.steps, "seed": args.seed},
                         {"kind": args.tokenizer, "vocab_size": args.vocab_size}, device=args.device,
                         progress=not args.no_progress)
    took = time.perf_counter() - t0
    out = save_proxy(lm, args.out, optimizer=args.save_optimizer)
    tail = lm.history[-50:]
    print(f"trained {lm.model.num_parameters():,} parameters for {len(lm.history)} steps on {docs.num_rows} documents "
          f"in {took:.0f}s (final loss {sum(tail) / max(1, len(tail)):.3f}) -> {out}")
    if args.sae_latents:
        from lmsieve.features.sae import collect_activations, save_sae, train_sae
        from lmsieve.features.proxy_lm.pooling import resolve_layer

        layer = resolve_layer(lm, args.sae_layer)
        acts = collect_activations(lm, docs.slice(0, 2000), layer)
        sae, hist = train_sae(acts, num_latents=args.sae_latents, k=args.sae_k, layer=layer, steps=args.sae_steps,
                              seed=args.seed)
        save_sae(sae, out / "sae")
        print(f"SAE on hidden_states[{layer}]: {acts.shape[0]:,} tokens, FVU {hist[0]:.3f} -> {hist[-1]:.3f} "
              f"-> {out / 'sae'}")
    return 0
