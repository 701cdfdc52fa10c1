"""Model features on CPU, per core: documents/s for each extractor on a shared-pool sample.

Runs pinned to one core (one torch/OpenMP thread), so every rate is per core. Measures, on the
first ``--docs`` pool documents (the pool is shuffled, so all domains are present):

* ``embed``: all-MiniLM-L6-v2 (packaged), max 256 tokens, batch 64;
* ``proxy_loss``: whole-document loss of the proxy (sliding window = context, stride = context/2);
* ``proxy_chunks``: CoLoR-Filter 512-token chunk losses;
* ``pooled``: RDS+ position-weighted last-layer mean (first ``context`` tokens);
* ``sae``: mean-pooled TopK SAE codes (first ``context`` tokens);
* ``knn``: exact inner-product top-100 of 256 queries over a 100k x 384 pool (faiss, blocks).

The proxy is ``--proxy DIR`` or, without it, the **default proxy** trained here on a seeded
``--train-docs`` sample of the pool (its training time is reported; ``--train-steps`` shortens it).

    python benchmarks/bench_features.py [--docs 200] [--proxy DIR] [--train-steps N]

Re-measuring the extractors of an earlier run without retraining:
``--proxy benchmarks/out/features_work/proxy`` (its training record is picked up).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, machine, peak_rss_mb, pin_one_core, print_table, write_json  # noqa: E402


def pool_docs(n: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((SHARED / "pool").glob("*.parquet"))
    parts, got = [], 0
    for f in files:
        t = pq.read_table(f, columns=["id", "text"])
        parts.append(t.slice(0, n - got))
        got += min(len(t), n - got)
        if got >= n:
            break
    return pa.concat_tables(parts).combine_chunks()


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200)
    ap.add_argument("--proxy", help="an existing proxy checkpoint (skips training)")
    ap.add_argument("--train-docs", type=int, default=3000)
    ap.add_argument("--train-steps", type=int, help="override the default proxy's steps")
    ap.add_argument("--work", default=str(Path(__file__).resolve().parent / "out" / "features_work"))
    args = ap.parse_args()
    pin_one_core()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from lmsieve.features.embeddings import Embedder
    from lmsieve.features.knn import blocked_topk
    from lmsieve.features.proxy_lm import (ProxyChunkLoss, PooledStates, ProxyLoss, load_proxy, save_proxy,
                                           train_proxy)
    from lmsieve.features.proxy_lm.config import ModelConfig, TokenizerConfig, TrainConfig
    from lmsieve.features.sae import SAECodes, collect_activations, load_sae, save_sae, train_sae

    docs = pool_docs(args.docs)
    chars = int(sum(len(t) for t in docs.column("text").to_pylist()))
    work = Path(args.work)
    rows, extra = [], {}
    if args.proxy:
        lm = load_proxy(args.proxy, device="cpu")
        record = Path(args.proxy).parent / "train_record.json"  # written when this script trained it
        if record.is_file():
            extra.update(json.loads(record.read_text()))
    else:
        sample = pool_docs(args.docs + args.train_docs).slice(args.docs)  # disjoint from the scored docs
        tcfg = TrainConfig() if args.train_steps is None else TrainConfig(steps=args.train_steps)
        lm, took = timed(lambda: train_proxy(sample, ModelConfig(), tcfg, TokenizerConfig(), device="cpu"))
        save_proxy(lm, work / "proxy")
        extra["default_proxy_train"] = {"seconds": round(took, 1), "steps": tcfg.steps, "batch": tcfg.batch_size,
                                        "context": lm.context, "params": lm.model.num_parameters(),
                                        "tokens": tcfg.steps * tcfg.batch_size * lm.context,
                                        "final_loss": float(np.mean(lm.history[-50:]))}
        (work / "train_record.json").write_text(json.dumps({"default_proxy_train": extra["default_proxy_train"]}))
        print(f"default proxy: {extra['default_proxy_train']}", flush=True)
    n_tokens = int(sum(len(x) for x in lm.tokenizer.encode_batch(docs)))
    sae_dir = Path(lm.path) / "sae"
    if not (sae_dir / "cfg.json").is_file():
        sae_dir = work / "sae"
    if not (sae_dir / "cfg.json").is_file():
        acts, t_acts = timed(lambda: collect_activations(lm, docs.slice(0, 100), -2))
        (sae, hist), t_sae = timed(lambda: train_sae(acts, num_latents=2048, k=32, layer=lm.num_layers() - 1, steps=300))
        save_sae(sae, work / "sae")
        sae_dir = work / "sae"
        (work / "sae_record.json").write_text(json.dumps({"sae_train": {"seconds": round(t_sae, 1),
                                                                       "tokens": int(acts.shape[0]), "fvu": [hist[0], hist[-1]]}}))
        extra["sae_train"] = {"seconds": round(t_sae, 1), "tokens": int(acts.shape[0]), "fvu": [hist[0], hist[-1]]}
    elif (sae_dir.parent / "sae_record.json").is_file():
        extra.update(json.loads((sae_dir.parent / "sae_record.json").read_text()))
    sae = load_sae(sae_dir)
    extractors = [("embed", lambda: Embedder(device="cpu")), ("proxy_loss", lambda: ProxyLoss(lm)),
                  ("proxy_chunks", lambda: ProxyChunkLoss(lm, chunk_len=512)), ("pooled", lambda: PooledStates(lm)),
                  ("sae", lambda: SAECodes(lm, sae))]
    for name, make in extractors:
        ext = make()
        ext(docs.slice(0, 4))  # warm up (and load the model)
        _, secs = timed(lambda: ext(docs))
        row = {"feature": name, "docs": docs.num_rows, "seconds": round(secs, 2),
               "docs/s/core": round(docs.num_rows / secs, 2), "chars/s/core": int(chars / secs)}
        if name.startswith("proxy"):
            row["tokens/s/core"] = int(n_tokens / secs)
        rows.append(row)
        print(row, flush=True)
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((100_000, 384)).astype(np.float32)
    queries = rng.standard_normal((256, 384)).astype(np.float32)
    _, secs = timed(lambda: blocked_topk(queries, (pool[i:i + 20_000] for i in range(0, len(pool), 20_000)), 100,
                                         use_gpu=False))
    rows.append({"feature": "knn top-100", "docs": len(pool), "seconds": round(secs, 2),
                 "docs/s/core": int(len(pool) / secs), "note": "pool vectors/s for 256 queries"})
    print()
    table = print_table(rows, ["feature", "docs", "seconds", "docs/s/core", "tokens/s/core", "chars/s/core", "note"])
    write_json("features.json", {"machine": machine(), "threads": 1, "docs": docs.num_rows, "chars": chars,
                                 "proxy_tokens": n_tokens, "proxy": {"path": str(lm.path), "params": lm.model.num_parameters(),
                                                                     "context": lm.context},
                                 "rows": rows, **extra, "peak_rss_mb": round(peak_rss_mb()), "table": table})


if __name__ == "__main__":
    main()
