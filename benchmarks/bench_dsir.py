"""DSIR featurize + fit + score, lmsieve vs the reference package ``data-selection``, per core.

Both run in fresh child processes pinned to one core, on the same pool and target, end to end
(fit the raw distribution on the pool, fit the target, score every pool document; the reference
featurizes the pool twice by design, lmsieve once). The scores are checked to agree.

    python benchmarks/bench_dsir.py [--limit N] [--target heldout_code_python]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, machine, peak_rss_mb, pin_one_core, print_table, run_child, write_json  # noqa: E402


def load(limit: int | None, target: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((SHARED / "pool").glob("*.parquet"))
    pool = pa.concat_tables([pq.read_table(f) for f in files]).combine_chunks()
    if limit:
        pool = pool.slice(0, limit)
    return pool, pq.read_table(SHARED / "targets" / f"{target}.parquet")


def child(which: str, limit: int | None, target: str, out_npy: str) -> dict:
    import numpy as np

    pin_one_core()
    pool, tgt = load(limit, target)
    n_chars = sum(len(t) for t in pool.column("text").to_pylist())
    if which == "lmsieve":
        from lmsieve.api import fit_and_score

        t0 = time.perf_counter()
        _, scores, _ = fit_and_score("dsir", tgt, pool)
        wall = time.perf_counter() - t0
    else:
        from data_selection import HashedNgramDSIR

        tmp = Path(tempfile.mkdtemp())
        for name, table in (("raw", pool), ("target", tgt)):
            with open(tmp / f"{name}.jsonl", "w") as f:
                for t in table.column("text").to_pylist():
                    f.write(json.dumps({"text": t}) + "\n")
        t0 = time.perf_counter()
        ref = HashedNgramDSIR([str(tmp / "raw.jsonl")], [str(tmp / "target.jsonl")], cache_dir=str(tmp / "cache"),
                              num_proc=1)
        ref.fit_importance_estimator(num_tokens_to_fit="auto")
        ref.compute_importance_weights()
        wall = time.perf_counter() - t0
        scores = np.load(tmp / "cache" / "log_importance_weights" / "0.npy")
    np.save(out_npy, scores)
    return {"impl": which, "docs": pool.num_rows, "mb_text": round(n_chars / 1e6, 1), "wall_s": round(wall, 2),
            "docs_per_s_per_core": round(pool.num_rows / wall, 1), "mb_per_s_per_core": round(n_chars / 1e6 / wall, 3),
            "peak_rss_mb": round(peak_rss_mb(), 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="first N pool documents (default: all)")
    ap.add_argument("--target", default="heldout_code_python")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--npy", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.impl, a.limit, a.target, a.npy)))
        return
    import numpy as np

    rows, tmp = [], Path(tempfile.mkdtemp())
    extra = (["--limit", str(a.limit)] if a.limit else []) + ["--target", a.target]
    for impl in ("lmsieve", "data-selection"):
        rows.append(run_child(__file__, "--impl", impl, "--npy", str(tmp / f"{impl}.npy"), *extra))
    ours, ref = np.load(tmp / "lmsieve.npy"), np.load(tmp / "data-selection.npy")
    max_rel = float(np.max(np.abs(ours - ref) / np.maximum(1.0, np.abs(ref))))
    same_order = bool(np.array_equal(np.argsort(-ours, kind="stable"), np.argsort(-ref, kind="stable")))
    speedup = rows[1]["wall_s"] / rows[0]["wall_s"]
    rows[0]["speedup"], rows[1]["speedup"] = f"{speedup:.1f}x", "1.0x"
    table = print_table(rows, ["impl", "docs", "mb_text", "wall_s", "docs_per_s_per_core", "mb_per_s_per_core",
                               "peak_rss_mb", "speedup"])
    print(f"scores: max relative difference {max_rel:.2e}; identical ranking: {same_order}")
    write_json("dsir.json", {"rows": rows, "speedup_per_core": round(speedup, 2), "max_rel_diff": max_rel,
                             "identical_ranking": same_order, "target": a.target, "machine": machine(),
                             "table": table})


if __name__ == "__main__":
    main()
