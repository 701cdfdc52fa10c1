"""DSIR selection on the whole shared pool: in-process API vs the Beam jobs on FnApiRunner.

Each run is a fresh child process on the same pool (4 shards, 20k documents, 128 MB of text) and
target, selecting 10% with the default Gumbel ranking, seed 0; the selected ids are checked to be
identical to the API's. Beam runs are end to end and cold (features job into an empty directory,
then the selection job), and their stages are timed separately.

* ``api``: ``lmsieve.select`` (pinned to one core);
* ``beam-in_memory``: FnApiRunner, in-process (pinned to one core: its stage rates are the
  per-core rates the Dataflow estimate uses);
* ``beam-multi_processing``: FnApiRunner with 2 worker processes (2 cores).

Peak memory is the peak of the summed RSS of the child and all its descendants (sampled every
50 ms from /proc), so worker processes count. Writes ``benchmarks/out/beam.json``.

    python benchmarks/bench_beam.py [--repeats 2] [--target heldout_code_python]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, machine, pin_one_core, print_table, run_child, write_json  # noqa: E402

KEEP, SEED = 0.1, 0


class TreeRss:
    """Peak of the summed RSS of this process and its descendants (Linux /proc)."""

    def __init__(self, every: float = 0.05):
        self.peak, self.every = 0, every
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _tree_kb(self) -> int:
        me = os.getpid()
        parent, rss = {}, {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/status") as f:
                    st = f.read()
            except OSError:
                continue
            pp = int(st.split("PPid:", 1)[1].split()[0])
            parent[int(d)] = pp
            rss[int(d)] = int(st.split("VmRSS:", 1)[1].split()[0]) if "VmRSS:" in st else 0
        total = 0
        for pid in rss:
            p = pid
            while p and p != me:
                p = parent.get(p, 0)
            if p == me:
                total += rss[pid]
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_kb())
            time.sleep(self.every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._tree_kb())


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (user + system): robust to a busy machine."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def child(mode: str, target: str) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if mode != "beam-multi_processing":
        pin_one_core()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pool_dir = str(SHARED / "pool")
    tpath = str(SHARED / "targets" / f"{target}.parquet")
    out: dict = {"mode": mode}
    with TreeRss() as mem:
        t0, c0 = time.perf_counter(), cpu_seconds()
        if mode == "api":
            import lmsieve
            from lmsieve.io.inputs import Paths

            sel = lmsieve.select(Paths([pool_dir]), "dsir", Paths([tpath]), keep=KEEP, seed=SEED)
            ids = sel.column("id").to_pylist()
            out["wall_s"] = time.perf_counter() - t0
            out["cpu_s"] = cpu_seconds() - c0
        else:
            from lmsieve.pipelines.features import NgramFeature
            from lmsieve.pipelines.features_job import run_features_job
            from lmsieve.pipelines.options import make_options
            from lmsieve.pipelines.selection_job import SelectionConfig, run_selection_job
            from lmsieve.sampling.select import Budget

            flags = ["--runner=FnApiRunner"]
            if mode == "beam-multi_processing":
                flags += ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
            tmp = tempfile.mkdtemp(prefix="lmsieve-bench-beam-")
            try:
                t1, c1 = time.perf_counter(), cpu_seconds()
                rep = run_features_job(pool_dir, f"{tmp}/features", [NgramFeature()], options=make_options(flags),
                                       progress_secs=0)
                out["features_s"] = time.perf_counter() - t1
                out["features_cpu_s"] = cpu_seconds() - c1
                t2, c2 = time.perf_counter(), cpu_seconds()
                m = run_selection_job(pool_dir, f"{tmp}/features", [tpath], f"{tmp}/out",
                                      SelectionConfig(method="dsir", budget=Budget(fraction=KEEP), seed=SEED),
                                      options=make_options(flags), progress_secs=0)
                out["selection_s"] = time.perf_counter() - t2
                out["selection_cpu_s"] = cpu_seconds() - c2
                out["wall_s"] = time.perf_counter() - t0
                out["cpu_s"] = cpu_seconds() - c0
                ids = [i for o in m["outputs"] if o["path"].startswith("selected-")
                       for i in pq.read_table(f"{tmp}/out/{o['path']}", columns=["id"]).column("id").to_pylist()]
                out["feature_bytes"] = sum(os.path.getsize(f"{tmp}/features/{f}") for f in os.listdir(f"{tmp}/features"))
                out["counts"] = {k: m["counts"][k] for k in ("input", "invalid", "selected", "rejected")}
                assert rep.docs == m["counts"]["input"]
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    files = sorted((SHARED / "pool").glob("*.parquet"))
    docs = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    text_bytes = sum(pa.compute.sum(pa.compute.binary_length(pq.read_table(f, columns=["text"]).column("text"))).as_py()
                     for f in files)
    out.update(peak_rss_mb=mem.peak / 1024, selected=len(ids), digest=ids_digest(ids), docs=docs,
               text_mb=text_bytes / 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--mode", default="api")
    ap.add_argument("--target", default="heldout_code_python")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.mode, a.target)))
        return
    modes = ["api", "beam-in_memory", "beam-multi_processing"]
    best: dict[str, dict] = {}
    load = []
    for _ in range(a.repeats):
        for mode in modes:
            load.append(os.getloadavg()[0])
            r = run_child(__file__, "--mode", mode, "--target", a.target)
            if mode not in best or r["wall_s"] < best[mode]["wall_s"]:
                best[mode] = r
    api = best["api"]
    rows = []
    for mode in modes:
        r = best[mode]
        rows.append({"run": mode, "cores": 2 if "multi" in mode else 1, "wall s": f"{r['wall_s']:.1f}",
                     "CPU s": f"{r['cpu_s']:.1f}",
                     "features s": f"{r['features_s']:.1f}" if "features_s" in r else "-",
                     "selection s": f"{r['selection_s']:.1f}" if "selection_s" in r else "-",
                     "peak RSS MB": f"{r['peak_rss_mb']:.0f}", "wall x API": f"{r['wall_s'] / api['wall_s']:.2f}",
                     "CPU x API": f"{r['cpu_s'] / api['cpu_s']:.2f}",
                     "same ids": "yes" if r["digest"] == api["digest"] else "NO"})
    table = print_table(rows, list(rows[0]))
    im = best["beam-in_memory"]
    per_core = {  # per CPU-second of the one-core in-process run: what one worker core does
        "features_docs_per_cpu_s": im["docs"] / im["features_cpu_s"],
        "features_mb_per_cpu_s": im["text_mb"] / im["features_cpu_s"],
        "selection_docs_per_cpu_s": im["docs"] / im["selection_cpu_s"],
        "selection_mb_per_cpu_s": im["text_mb"] / im["selection_cpu_s"],
        "api_mb_per_cpu_s": api["text_mb"] / api["cpu_s"],
    }
    print("per-core rates (CPU time of the one-core runs): " + ", ".join(f"{k} {v:,.1f}" for k, v in per_core.items()))
    write_json("beam.json", {"machine": machine(), "target": a.target, "keep_fraction": KEEP, "seed": SEED,
                             "repeats": a.repeats, "load_avg_1m_at_starts": load, "runs": best, "table": table,
                             "per_core": per_core})
    if any(r["digest"] != api["digest"] for r in best.values()):
        sys.exit("Beam selected different ids than the API")


if __name__ == "__main__":
    main()
