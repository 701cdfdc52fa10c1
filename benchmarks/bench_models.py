"""Tokens/s per model feature (document loss, chunk loss, pooled states, SAE codes) on a real LM.

    python benchmarks/bench_models.py                                  # SmolLM2-135M (fetched) on CPU/auto
    python benchmarks/bench_models.py --device cuda --docs 512         # on a GPU (bf16 by default)
    python benchmarks/bench_models.py --random-init path/to/config.json --device cuda
        # the same architecture with random weights (no download): same cost per token

Documents: the shared pool (first ``--docs`` documents, cut to ``--max-chars``) when it is there,
else seeded synthetic English-like text (a GPU box may lack the pool). Every feature goes through
the library's own extractors (``ProxyLoss``, ``ProxyChunkLoss``, ``PooledStates``, ``SAECodes`` with
a random TopK SAE on the penultimate layer: codes cost the same trained or not). Throughput is
tokens scored per second after a warm-up batch. On CUDA the table also gives the fraction of the
bf16 matmul roofline reached (``--peak-tflops``, default 989 = H100/H200 dense bf16), counting
2 x parameters x tokens (the LM head only where logits are computed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, machine, print_table, write_json  # noqa: E402


def docs_for(n: int, max_chars: int):
    import pyarrow.parquet as pq

    files = sorted((SHARED / "pool").glob("*.parquet"))
    if files:
        t = pq.read_table(files[0], columns=["id", "text"]).slice(0, n)
        return [s[:max_chars] for s in t.column("text").to_pylist()], "shared pool"
    import numpy as np

    words = ("the of and to in is that for it as with was on be by this are from at or an which data model "
             "language selection training we our results table figure method def return import class if else "
             "for while print value list dict").split()
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        toks = rng.choice(words, size=max_chars // 5)
        out.append(" ".join(toks)[:max_chars])
    return out, "synthetic"


def random_init_dir(config: Path, texts: list[str], out: Path) -> Path:
    """An HF dir with ``config``'s architecture and random weights, plus a tokenizer (the one next to
    the config if any, else a byte-level BPE of up to 8,192 ids trained on ``texts``)."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    src = config if config.is_dir() else config.parent
    cfg = AutoConfig.from_pretrained(str(src))
    out.mkdir(parents=True, exist_ok=True)
    if (src / "tokenizer.json").is_file():
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (src / f).is_file():
                shutil.copy(src / f, out / f)
    else:
        from lmsieve.features.proxy_lm.config import TokenizerConfig
        from lmsieve.features.proxy_lm.tokenizer import train_tokenizer

        tok = train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=min(8192, cfg.vocab_size)), texts)
        tok.save(out)
        cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_id, tok.eos_id, tok.pad_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg)
    model.save_pretrained(str(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="fetched name or local HF dir (default smollm2-135m)")
    ap.add_argument("--random-init", metavar="CONFIG", help="config.json (or its dir): random weights, no fetch")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16, float16")
    ap.add_argument("--docs", type=int, default=32)
    ap.add_argument("--max-chars", type=int, default=2000)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--features", default="loss,chunks,pooled,sae")
    ap.add_argument("--sae-latents", type=int, default=0, help="default 16 x hidden size")
    ap.add_argument("--sae-k", type=int, default=64)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from lmsieve.features.device import describe
    from lmsieve.features.proxy_lm import PooledStates, ProxyChunkLoss, ProxyLoss, load_proxy
    from lmsieve.features.sae import SAECodes, TopKSAE, load_sae, save_sae

    texts, source = docs_for(args.docs, args.max_chars)
    tmp = Path(tempfile.mkdtemp(prefix="bench-models-"))
    ref = random_init_dir(Path(args.random_init), texts, tmp / "model") if args.random_init else args.model
    t0 = time.perf_counter()
    lm = load_proxy(ref, device=args.device, dtype=args.dtype)
    load_s = time.perf_counter() - t0
    dev = lm.device
    n_tokens = int(sum(len(x) + 1 for x in lm.tokenizer.encode_batch(texts)))
    params = sum(p.numel() for p in lm.model.parameters())
    head = lm.model.get_output_embeddings().weight.numel() if lm.model.get_output_embeddings() is not None else 0
    body = params - lm.model.get_input_embeddings().weight.numel()
    extractors = {"loss": lambda: ProxyLoss(lm, batch_tokens=args.batch_tokens),
                  "chunks": lambda: ProxyChunkLoss(lm, chunk_len=512, batch_tokens=args.batch_tokens),
                  "pooled": lambda: PooledStates(lm, batch_tokens=args.batch_tokens)}
    if "sae" in args.features:
        d = lm.hidden_size()
        sae = TopKSAE(d, args.sae_latents or 16 * d, args.sae_k, layer=lm.num_layers() - 1,
                      gen=torch.Generator().manual_seed(0))
        sae = load_sae(save_sae(sae, tmp / "sae"))
        extractors["sae"] = lambda: SAECodes(lm, sae)
    rows = []
    for name in args.features.split(","):
        ext = extractors[name]()
        ext(texts[:2])  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        ext(texts)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t
        flops = 2.0 * (body + (head if name in ("loss", "chunks") else 0)) * n_tokens
        row = {"feature": name, "docs": len(texts), "tokens": n_tokens, "seconds": round(secs, 2),
               "tokens/s": int(n_tokens / secs), "TFLOP/s": round(flops / secs / 1e12, 3)}
        if dev.type == "cuda":
            row["roofline"] = f"{flops / secs / 1e12 / args.peak_tflops:.1%}"
        rows.append(row)
        print(row, flush=True)
    info = {**describe(dev), "dtype": str(next(lm.model.parameters()).dtype), "model": str(lm.path),
            "random_init": bool(args.random_init), "params": params, "layers": lm.num_layers(),
            "context": lm.context, "docs_from": source, "max_chars": args.max_chars,
            "batch_tokens": args.batch_tokens, "load_seconds": round(load_s, 1), "machine": machine(),
            "load_avg": os.getloadavg()}
    print(json.dumps(info))
    cols = ["feature", "docs", "tokens", "seconds", "tokens/s", "TFLOP/s"] + (["roofline"] if dev.type == "cuda" else [])
    print_table(rows, cols)
    write_json(f"models_{dev.type}.json", {"info": info, "rows": rows})


if __name__ == "__main__":
    main()
