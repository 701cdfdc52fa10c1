"""Meta-rater on the shared pool: rating throughput, proxy runs per hour, the regressor's held-out
Spearman, and fitted vs uniform weights on a target half the search never saw.

    python benchmarks/bench_meta_rater.py [--runs 32] [--pool-docs 3000] [--target heldout_code_python]
                                          [--device auto|cpu|cuda]

The target is split by a stable hash into a *search* half (given to ``fit``, which holds out half of
it again as the proxies' validation set) and a *test* half. After the search, proxies (the same
trainer, ``--eval-seeds`` seeds) train on the top 15 % under the fitted weights and under uniform
weights; their loss on the test half is the comparison. Writes benchmarks/out/meta_rater.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, SHARED, machine, print_table, write_json  # noqa: E402

#: A proxy small enough for a shared 2-core CPU (~15-30 s a run under load); pass --proxy for more.
TINY = {"model": {"n_layer": 1, "d_model": 32, "n_head": 2, "context": 64}, "steps": 50, "batch_size": 8,
        "lr": 1e-2}


def load(pool_docs: int, target: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmsieve.sampling.hashing import stable_hash64

    parts, got = [], 0
    for f in sorted((SHARED / "pool").glob("*.parquet")):
        t = pq.read_table(f, columns=["id", "text", "domain"])
        parts.append(t.slice(0, pool_docs - got))
        got += min(t.num_rows, pool_docs - got)
        if got >= pool_docs:
            break
    pool = pa.concat_tables(parts).combine_chunks()
    tgt = pq.read_table(SHARED / "targets" / f"{target}.parquet", columns=["id", "text"])
    h = stable_hash64(7, tgt.column("id").to_pylist()) % 2 == 0
    return pool, tgt.filter(pa.array(h)), tgt.filter(pa.array(~h))


def experiment(runs: int, pool_docs: int, target: str, work: Path, *, proxy: dict | None = None, eval_seeds: int = 3,
               eval_docs: int = 32, eval_chars: int = 512, device: str = "cpu") -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lmsieve.selectors.meta_rater import MetaRater
    from lmsieve.selectors.meta_rater_search import proxy_trainer, top_fraction_mask

    proxy = proxy or TINY
    pool, search, test = load(pool_docs, target)
    sel = MetaRater(proxy_runs=runs, proxy=proxy, eval_docs=eval_docs, eval_chars=eval_chars,
                    regressor={"min_child_samples": 5} if runs < 100 else {}, runs=str(work / "runs.parquet"),
                    device=device)
    t0 = time.perf_counter()
    sel.fit(search, pool.select(["id", "text"]))
    fit_s = time.perf_counter() - t0
    sel.save(work / "fitted")
    run_s = np.array(pq.read_table(work / "runs.parquet").column("seconds").to_pylist())
    S = sel.scaled(pool)
    uniform = np.full(len(sel.names_), 1.0 / len(sel.names_)) * sel.signs_
    train = proxy_trainer(proxy, eval_docs=len(test), eval_chars=eval_chars)
    out = {}
    for name, w in (("fitted", sel.weights_), ("uniform", uniform)):
        m = top_fraction_mask(S @ w)
        losses = [train(pool.filter(pa.array(m)).select(["id", "text"]), {"test": test}, 100 + s)["losses"]["test"]
                  for s in range(eval_seeds)]
        dom = np.array(pool.column("domain").to_pylist())[m]
        out[name] = {"test_loss": float(np.mean(losses)), "losses": losses,
                     "share_code_python": float(np.mean(dom == "code_python"))}
    return {"runs": runs, "pool_docs": pool.num_rows, "target": target, "fit_seconds": fit_s,
            "proxy_run_seconds_median": float(np.median(run_s)), "proxy_runs_per_hour": float(3600 / np.median(run_s)),
            "spearman_heldout": sel.spearman_, "weights": dict(zip(sel.names_, map(float, sel.weights_))),
            "compare": out, "proxy": proxy}


def eval_rows(target: str, fitted: str, *, limit: int, seeds: int, proxy_steps: int, budget_fraction: float = 0.02,
              max_target_examples: int = 64) -> list[dict]:
    """The eval harness (lmsieve.eval, as benchmarks/bench_eval.py) for random, DSIR and Meta-rater
    from ``fitted`` on the first ``limit`` pool documents. Meta-rater's search saw its own split of
    the target (stable hash 7), which may overlap the harness's selection half (hash per seed)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from lmsieve.eval.harness import run_eval, summarize
    from lmsieve.eval.proxy import ProxyEval
    from lmsieve.io.inputs import load_docs

    pool, _ = load_docs(str(SHARED / "pool"), name="pool")
    pool = pool.slice(0, limit) if limit else pool
    chars = int(pc.sum(pc.utf8_length(pool.column("text"))).as_py())
    tgt = pq.read_table(SHARED / "targets" / f"{target}.parquet", columns=["id", "text", "domain"])
    proxy = ProxyEval(steps=proxy_steps, eval_every=max(1, proxy_steps // 3), eval_docs=32)
    runs = run_eval(pool, tgt, ["random", "dsir", "meta_rater"], int(budget_fraction * chars), list(range(seeds)),
                    proxy=proxy, method_params={"meta_rater": {"fitted": fitted}},
                    max_target_examples=max_target_examples, progress=lambda m: print(target, m, flush=True))
    return summarize(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=32)
    ap.add_argument("--pool-docs", type=int, default=3000)
    ap.add_argument("--target", default="heldout_code_python")
    ap.add_argument("--eval-seeds", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--eval-only", metavar="FITTED", help="only the eval-harness rows, Meta-rater from FITTED")
    ap.add_argument("--eval-limit", type=int, default=4000, help="eval harness: first N pool documents (0 = all)")
    ap.add_argument("--eval-proxy-steps", type=int, default=60)
    a = ap.parse_args()
    if a.eval_only:
        rows = eval_rows(a.target, a.eval_only, limit=a.eval_limit, seeds=a.eval_seeds, proxy_steps=a.eval_proxy_steps)
        keys = ["method", "precision", "precision_vs_random", "proxy_loss", "proxy_loss_vs_random", "kl_reduction"]
        print_table([{k: (f"{r[k]:.4f}" if isinstance(r.get(k), float) else r.get(k, "n/a")) for k in keys}
                     for r in rows], keys)
        write_json(f"meta_rater_eval_{a.target}.json", {"rows": rows, "fitted": a.eval_only, "limit": a.eval_limit,
                                                         "seeds": a.eval_seeds, "machine": machine()})
        return
    device = a.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    work = OUT / "meta_rater" / f"{a.target}-{a.runs}"
    work.mkdir(parents=True, exist_ok=True)
    res = experiment(a.runs, a.pool_docs, a.target, work, eval_seeds=a.eval_seeds, device=device)
    rows = [{"weights": k, "test_loss": f"{v['test_loss']:.4f}", "share_code_python": f"{v['share_code_python']:.3f}"}
            for k, v in res["compare"].items()]
    print_table(rows, ["weights", "test_loss", "share_code_python"])
    print(f"proxy runs/hour: {res['proxy_runs_per_hour']:.0f}; held-out Spearman: {res['spearman_heldout']}")
    write_json(f"meta_rater_{a.target}.json", {**res, "machine": machine()})


if __name__ == "__main__":
    main()
