"""``lmsieve train-sae``: train a TopK sparse autoencoder (with AuxK) on one layer of a causal LM.

MONA (Ma et al. 2025) encodes documents with a TopK SAE on a model's penultimate residual layer;
this trains one for any model lmsieve can load (a fetched name such as ``smollm2-135m`` or a local
Hugging Face directory), in Eleuther ``sparsify``'s on-disk format, so ``--param sae=DIR`` (or
MONA's own cache) can use it. Losses: FVU + 1/32 x AuxK (Gao et al. 2024).
"""
from __future__ import annotations

import time


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train-sae", help="train a TopK sparse autoencoder on a model's activations (MONA)",
        description="Collect one layer's activations of --model on --data and train a TopK SAE with the AuxK "
                    "dead-latent loss (Gao et al. 2024); save it to --out in Eleuther sparsify's format "
                    "(cfg.json + sae.safetensors). The output directory is the last line printed.",
    )
    p.add_argument("--model", required=True, metavar="M",
                   help="a fetched model name (e.g. smollm2-135m) or a local Hugging Face / lmsieve model directory")
    p.add_argument("--data", required=True, nargs="+", metavar="P", help="documents (Parquet with id/text)")
    p.add_argument("--out", required=True, metavar="DIR", help="SAE directory to write")
    p.add_argument("--layer", type=int, default=-2,
                   help="hidden_states index, Hugging Face numbering (0 = embeddings, i = after block i); "
                        "default -2: the penultimate layer, as MONA")
    p.add_argument("--latents", type=int, default=None, help="number of latents (default: --expansion x d_model)")
    p.add_argument("--expansion", type=int, default=8, help="latents per model dimension (default 8)")
    p.add_argument("--k", type=int, default=32, help="latents kept per token (default 32)")
    p.add_argument("--max-docs", type=int, default=1000, help="a seeded sample of at most N documents (default 1000)")
    p.add_argument("--max-tokens", type=int, default=256, help="tokens per document (default 256)")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    p.add_argument("--batch-size", type=int, default=1024, help="tokens per step (default 1024)")
    p.add_argument("--k-aux", type=int, default=None, help="AuxK latents (default d_model / 2)")
    p.add_argument("--dead-tokens", type=int, default=None,
                   help="a latent is dead after this many tokens without firing (default 10M, capped at a tenth "
                        "of the tokens the run sees)")
    p.add_argument("--no-auxk", action="store_true", help="train on FVU alone (ablation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.cli.common import one_or_many
    from lmsieve.cli.train_proxy_cmd import _sample
    from lmsieve.features.sae import train_sae_on_texts
    from lmsieve.io.inputs import load_docs
    from lmsieve.schemas.errors import ConfigError
    from lmsieve.selectors.rds import load_lm

    for name in ("k", "max_docs", "max_tokens", "steps", "batch_size", "expansion"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    docs, _ = load_docs(one_or_many(args.data), name="data", columns=["id", "text"])
    docs = _sample(docs, args.max_docs, args.seed)
    lm = load_lm(args.model, device=args.device)
    t0 = time.perf_counter()
    sae = train_sae_on_texts(lm, docs, args.out, layer=args.layer, num_latents=args.latents,
                             expansion=args.expansion, k=args.k, max_tokens=args.max_tokens, steps=args.steps,
                             batch_size=args.batch_size, seed=args.seed, show_progress=not args.no_progress,
                             auxk=not args.no_auxk, k_aux=args.k_aux, dead_tokens=args.dead_tokens)
    i = sae.train_info
    print(f"SAE {sae.num_latents} latents, k={sae.k} on hidden_states[{sae.layer}] of {args.model}: "
          f"{i['tokens']:,} tokens from {docs.num_rows} documents, {i['steps']} steps in "
          f"{time.perf_counter() - t0:.0f}s; FVU {i['fvu_first']:.3f} -> {i['fvu_last']:.3f}, "
          f"dead {i['dead_fraction']:.1%} (AuxK {'on' if i['auxk'] else 'off'})")
    print(sae.path)
    return 0
