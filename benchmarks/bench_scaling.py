"""Scaling of lmsieve's scorers with pool size: cost should grow linearly, memory stay flat.

Pools of 1k → 20k shared-pool documents, and a synthetic 10× pool (the whole pool repeated with new
ids). Each point runs in a fresh child pinned to one core and *streams* the Parquet pool in
batches (fit on the target and, for DSIR, on the first batches up to its fit budget; then score
batch by batch), so peak memory depends on the batch, not the pool.

    python benchmarks/bench_scaling.py [--sizes 1000,2000,5000,10000,20000] [--synthetic 10]
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

BATCH = 2048


def make_pool(n: int, repeat: int, path: Path) -> int:
    """Write the first n pool docs (repeated ``repeat`` times with new ids) to one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted((SHARED / "pool").glob("*.parquet"))
    pool = pa.concat_tables([pq.read_table(f, columns=["id", "text"]) for f in files]).slice(0, n)
    with pq.ParquetWriter(path, pool.schema, compression="zstd") as w:
        for r in range(repeat):
            ids = pa.array([f"{i}#{r}" for i in pool.column("id").to_pylist()])
            w.write_table(pool.set_column(0, "id", ids), row_group_size=BATCH)
    return n * repeat


def child(method: str, path: str, target: str, n_targets: int) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    pin_one_core()
    from lmsieve.selectors import get_selector_class

    tgt = pq.read_table(SHARED / "targets" / f"{target}.parquet").slice(0, n_targets)
    sel = get_selector_class(method)()
    pf = pq.ParquetFile(path)
    t0 = time.perf_counter()
    if sel.needs_pool_sample:  # DSIR: raw counts streamed up to the fit budget
        raw, done, seen = None, False, 0
        for b in pf.iter_batches(batch_size=BATCH, columns=["id", "text"]):
            c, done = sel.raw_counts(b, seen)
            raw = c if raw is None else raw + c
            seen = int(raw.sum())
            if done:
                break
        sel.fit_counts(raw, [sel.featurizer.transform(tgt).total_counts()])
    else:
        sel.fit(tgt)
    n, scores = 0, []
    for b in pf.iter_batches(batch_size=BATCH, columns=["id", "text"]):
        s, _ = sel.score_and_mask(b)
        scores.append(s)
        n += b.num_rows
    wall = time.perf_counter() - t0
    s = np.concatenate(scores)
    return {"method": method, "docs": n, "wall_s": round(wall, 2), "docs_per_s_per_core": round(n / wall, 1),
            "us_per_doc": round(wall / n * 1e6, 1), "peak_rss_mb": round(peak_rss_mb(), 0),
            "finite": bool(np.isfinite(s).all())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,2000,5000,10000,20000")
    ap.add_argument("--synthetic", type=int, default=10, help="repeat factor of the synthetic pool (0: none)")
    ap.add_argument("--methods", default="dsir,zipfit")
    ap.add_argument("--zipfit-targets", type=int, default=20, help="humaneval targets for zipfit (cost ∝ targets)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--target", help=argparse.SUPPRESS)
    ap.add_argument("--n-targets", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.method, a.path, a.target, a.n_targets)))
        return
    tmp = Path(tempfile.mkdtemp())
    points = [(int(s), 1) for s in a.sizes.split(",")]
    if a.synthetic:
        points.append((20438, a.synthetic))
    rows = []
    for n, rep in points:
        path = tmp / f"pool-{n}x{rep}.parquet"
        total = make_pool(n, rep, path)
        for m in a.methods.split(","):
            target, k = ("heldout_code_python", 300) if m == "dsir" else ("humaneval", a.zipfit_targets)
            r = run_child(__file__, "--method", m, "--path", str(path), "--target", target, "--n-targets", str(k))
            r["pool"] = f"{n:,}" + (f" x{rep} (synthetic)" if rep > 1 else "")
            rows.append(r)
            print(json.dumps(r), flush=True)
        path.unlink()
    table = print_table(rows, ["method", "pool", "docs", "wall_s", "docs_per_s_per_core", "us_per_doc", "peak_rss_mb"])
    write_json("scaling.json", {"rows": rows, "batch_rows": BATCH, "zipfit_targets": a.zipfit_targets,
                                "machine": machine(), "table": table})


if __name__ == "__main__":
    main()
