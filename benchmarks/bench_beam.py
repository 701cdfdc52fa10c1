"""Beam at scale, measured locally (issue 14). Suites (``--suite``, default all):

* ``e2e``: DSIR selection, in-process API vs the Beam jobs (features + selection, FnApiRunner
  in_memory, one core), on the first 12k and 20k documents of the shared pool (``--docs``), cold,
  selected ids checked identical; goal: Beam wall time at most 1.5x the API's.
* ``memory``: peak RSS (process tree) of the DSIR job (features + selection) and of the
  embeddings features job at 1x and 10x a pool (the 10x pool repeats the 1x documents under new
  ids, in 10x as many shards); goal: 10x/1x at most 1.3 (memory bounded per unit, not per pool).
* ``ties``: a synthetic 1M-document scores-only global selection (GroupCutoffs + filter) with
  30% tied scores: peak RSS, wall time and the exact band's size (bound: 2 (N/q + eps N)).
* ``embed``: embeddings documents/s through RunInference on ``--device auto|cpu|cuda`` (GPU
  utilisation sampled with nvidia-smi when on CUDA); the GPU figure the lead runs.

Each measurement runs in a fresh child process (peak RSS = summed RSS of the child and its
descendants, sampled every 50 ms). Writes ``benchmarks/out/beam.json``.

    python benchmarks/bench_beam.py [--suite e2e,memory,ties,embed] [--device auto] [--quick]
    python benchmarks/bench_beam.py --suite embed --device cuda --embed-docs 20000   # on a GPU
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


def make_pool(n: int, copies: int, root: str, shards_per_copy: int = 4) -> str:
    """The first ``n`` pool documents, ``copies`` times (new ids), as ``copies * shards_per_copy`` shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts, got = [], 0
    for f in sorted((SHARED / "pool").glob("*.parquet")):
        t = pq.read_table(f, columns=["id", "text", "domain"])
        parts.append(t.slice(0, n - got))
        got += min(len(t), n - got)
        if got >= n:
            break
    base = pa.concat_tables(parts).combine_chunks()
    d = Path(root) / f"pool-{n}x{copies}"
    d.mkdir(parents=True, exist_ok=True)
    step = -(-base.num_rows // shards_per_copy)
    for c in range(copies):
        t = base.set_column(0, "id", pa.array([f"{i}~{c}" for i in base.column("id").to_pylist()]))
        for s in range(shards_per_copy):
            pq.write_table(t.slice(s * step, step), d / f"part-{c:03d}-{s}.parquet", row_group_size=1000)
    return str(d)


def run_dsir_beam(pool: str, tpath: str, tmp: str, flags: list[str]) -> tuple[list[str], dict]:
    import pyarrow.parquet as pq

    from lmsieve.pipelines.features import NgramFeature
    from lmsieve.pipelines.features_job import run_features_job
    from lmsieve.pipelines.options import make_options
    from lmsieve.pipelines.selection_job import SelectionConfig, run_selection_job
    from lmsieve.sampling.select import Budget

    out: dict = {}
    t1, c1 = time.perf_counter(), cpu_seconds()
    run_features_job(pool, f"{tmp}/features", [NgramFeature()], options=make_options(flags), progress_secs=0)
    out["features_s"], out["features_cpu_s"] = time.perf_counter() - t1, cpu_seconds() - c1
    t2, c2 = time.perf_counter(), cpu_seconds()
    m = run_selection_job(pool, f"{tmp}/features", [tpath], f"{tmp}/out",
                          SelectionConfig(method="dsir", budget=Budget(fraction=KEEP), seed=SEED),
                          options=make_options(flags), progress_secs=0)
    out["selection_s"], out["selection_cpu_s"] = time.perf_counter() - t2, cpu_seconds() - c2
    ids = [i for o in m["outputs"] if o["path"].startswith("selected-")
           for i in pq.read_table(f"{tmp}/out/{o['path']}", columns=["id"]).column("id").to_pylist()]
    return ids, out


def child_e2e(mode: str, target: str, pool: str) -> dict:
    pin_one_core()
    tpath = str(SHARED / "targets" / f"{target}.parquet")
    out: dict = {"mode": mode}
    with TreeRss() as mem:
        t0, c0 = time.perf_counter(), cpu_seconds()
        if mode == "api":
            import lmsieve
            from lmsieve.io.inputs import Paths

            ids = lmsieve.select(Paths([pool]), "dsir", Paths([tpath]), keep=KEEP, seed=SEED).column("id").to_pylist()
        else:
            tmp = tempfile.mkdtemp(prefix="lmsieve-bench-beam-")
            try:
                ids, parts = run_dsir_beam(pool, tpath, tmp, ["--runner=FnApiRunner"])
                out.update(parts)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        out["wall_s"], out["cpu_s"] = time.perf_counter() - t0, cpu_seconds() - c0
    out.update(peak_rss_mb=mem.peak / 1024, selected=len(ids), digest=ids_digest(ids))
    return out


def child_memory(job: str, pool: str, target: str, device: str) -> dict:
    pin_one_core()
    tmp = tempfile.mkdtemp(prefix="lmsieve-bench-mem-")
    try:
        with TreeRss() as mem:
            t0 = time.perf_counter()
            if job == "dsir":
                ids, _ = run_dsir_beam(pool, str(SHARED / "targets" / f"{target}.parquet"), tmp,
                                       ["--runner=FnApiRunner"])
                n = len(ids)
            else:
                from lmsieve.pipelines.features_job import run_features_job
                from lmsieve.pipelines.inference import SentenceEmbeddingHandler
                from lmsieve.pipelines.options import make_options

                rep = run_features_job(pool, f"{tmp}/features", [], [SentenceEmbeddingHandler(
                    device=device, max_batch_size=64, max_seq_length=128, dtype="float16")],
                    options=make_options(["--runner=FnApiRunner"]), progress_secs=0)
                n = rep.counters.get("docs_inferred.embeddings", 0)
            wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"job": job, "peak_rss_mb": mem.peak / 1024, "wall_s": wall, "n": n}


def child_ties(n: int, q: int, eps: float) -> dict:
    import numpy as np
    import pyarrow as pa

    import apache_beam as beam
    from lmsieve.pipelines.global_select import GroupCutoffs, Scored
    from lmsieve.pipelines.metrics import query_counters
    from lmsieve.pipelines.options import make_options
    from lmsieve.pipelines.selection_job import ApplyCutoffs
    from lmsieve.sampling.select import Budget, ranking_keys

    pin_one_core()
    unit = 20_000

    def units(_):
        for a in range(0, n, unit):
            m = min(unit, n - a)
            rng = np.random.default_rng(a)
            score = rng.normal(size=m)
            score[rng.random(m) < 0.3] = 0.5
            ids = pa.array([f"doc-{a + i}" for i in range(m)])
            key, tb = ranking_keys(score, ids, seed=0, ranking="topk")
            yield Scored(0, a // unit, a, m, np.arange(m, dtype=np.int32), ids.to_pylist(), score,
                         np.ones(m, bool), key, tb, np.ones(m, np.int64), np.ones(m, np.int64),
                         np.full(m, None, dtype=object), np.full(m, "", dtype=object))

    with TreeRss() as mem:
        t0 = time.perf_counter()
        p = beam.Pipeline(options=make_options(["--runner=FnApiRunner"]))
        scored = p | beam.Create([None]) | beam.FlatMap(units)
        cut = scored | GroupCutoffs({"": Budget(k=int(0.35 * n))}, num_quantiles=q, epsilon=eps, max_num_elements=n)
        _ = scored | "Apply" >> beam.ParDo(ApplyCutoffs(), cutoffs=beam.pvalue.AsDict(cut))
        res = p.run()
        res.wait_until_finish()
        wall = time.perf_counter() - t0
    c = query_counters(res)
    return {"n": n, "q": q, "eps": eps, "band": c.get("band_docs"), "bound": 2 * (n / q + eps * n),
            "selected": c.get("docs_selected"), "wall_s": wall, "peak_rss_mb": mem.peak / 1024}


def child_embed(n: int, device: str) -> dict:
    import subprocess as sp

    root = tempfile.mkdtemp(prefix="lmsieve-bench-embed-")
    pool = make_pool(min(n, 20_000), max(1, -(-n // 20_000)), root)
    util: list[float] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                r = sp.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=5)
                util.append(float(r.stdout.split()[0]))
            except Exception:  # noqa: BLE001 - no GPU / no nvidia-smi
                return
            time.sleep(0.5)

    from lmsieve.pipelines.features_job import run_features_job
    from lmsieve.pipelines.inference import SentenceEmbeddingHandler, resolve_device
    from lmsieve.pipelines.options import make_options

    dev = str(resolve_device(device))
    th = threading.Thread(target=sample, daemon=True)
    if dev.startswith("cuda"):
        th.start()
    try:
        t0 = time.perf_counter()
        rep = run_features_job(pool, f"{root}/features", [], [SentenceEmbeddingHandler(
            device=device, max_batch_size=256 if dev.startswith("cuda") else 64, dtype="float16")],
            options=make_options(["--runner=FnApiRunner"]), progress_secs=0)
        wall = time.perf_counter() - t0
    finally:
        stop.set()
        shutil.rmtree(root, ignore_errors=True)
    docs = rep.counters.get("docs_inferred.embeddings", 0)
    return {"device": dev, "docs": docs, "wall_s": wall, "docs_per_s": docs / wall,
            "gpu_util_mean": sum(util) / len(util) if util else None, "gpu_util_samples": len(util)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", default=None)
    ap.add_argument("--suite", default="e2e,memory,ties,embed")
    ap.add_argument("--docs", default="12000,20000", help="e2e pool sizes")
    ap.add_argument("--target", default="heldout_code_python")
    ap.add_argument("--device", default="auto", help="embeddings device: auto|cpu|cuda")
    ap.add_argument("--embed-docs", type=int, default=2000)
    ap.add_argument("--mem-docs", default="2000,400", help="1x pool of the DSIR and the embeddings memory runs")
    ap.add_argument("--ties-docs", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="small sizes (checks the script)")
    ap.add_argument("--args", default="")
    a = ap.parse_args()
    if a.child:
        kw = json.loads(a.args)
        print(json.dumps({"e2e": child_e2e, "memory": child_memory, "ties": child_ties,
                          "embed": child_embed}[a.child](**kw)))
        return
    if a.quick:
        a.docs, a.mem_docs, a.ties_docs, a.embed_docs = "1000", "300,60", 50_000, 200
    suites = a.suite.split(",")
    res: dict = {"machine": machine(), "load_avg_1m_at_start": os.getloadavg()[0]}
    call = (lambda name, **kw: run_child(__file__, name, "--args", json.dumps(kw)))  # noqa: E731
    root = tempfile.mkdtemp(prefix="lmsieve-bench-pools-")
    try:
        if "e2e" in suites:
            rows = []
            for n in (int(x) for x in a.docs.split(",")):
                pool = make_pool(n, 1, root)
                api = call("e2e", mode="api", target=a.target, pool=pool)
                bm = call("e2e", mode="beam", target=a.target, pool=pool)
                rows.append({"docs": n, "API s": f"{api['wall_s']:.1f}", "Beam s": f"{bm['wall_s']:.1f}",
                             "features s": f"{bm['features_s']:.1f}", "selection s": f"{bm['selection_s']:.1f}",
                             "Beam x API": f"{bm['wall_s'] / api['wall_s']:.2f}",
                             "API MB": f"{api['peak_rss_mb']:.0f}", "Beam MB": f"{bm['peak_rss_mb']:.0f}",
                             "same ids": "yes" if api["digest"] == bm["digest"] else "NO"})
                res.setdefault("e2e", []).append({"docs": n, "api": api, "beam": bm})
            res["e2e_table"] = print_table(rows, list(rows[0]))
        if "memory" in suites:
            rows = []
            n_dsir, n_emb = (int(x) for x in a.mem_docs.split(","))
            for job, n in (("dsir", n_dsir), ("embeddings", n_emb)):
                r1 = call("memory", job=job, pool=make_pool(n, 1, root), target=a.target, device="cpu")
                r10 = call("memory", job=job, pool=make_pool(n, 10, root), target=a.target, device="cpu")
                rows.append({"job": job, "1x docs": n, "1x MB": f"{r1['peak_rss_mb']:.0f}",
                             "10x MB": f"{r10['peak_rss_mb']:.0f}", "10x / 1x": f"{r10['peak_rss_mb'] / r1['peak_rss_mb']:.2f}",
                             "1x s": f"{r1['wall_s']:.1f}", "10x s": f"{r10['wall_s']:.1f}"})
                res.setdefault("memory", []).append({"job": job, "docs": n, "x1": r1, "x10": r10})
            res["memory_table"] = print_table(rows, list(rows[0]))
        if "ties" in suites:
            r = call("ties", n=a.ties_docs, q=1001, eps=1e-3)
            res["ties"] = r
            res["ties_table"] = print_table([{"docs": r["n"], "tied": "30%", "band": r["band"],
                                              "bound 2(N/q+eps N)": f"{r['bound']:.0f}", "selected": r["selected"],
                                              "wall s": f"{r['wall_s']:.1f}", "peak RSS MB": f"{r['peak_rss_mb']:.0f}"}],
                                            ["docs", "tied", "band", "bound 2(N/q+eps N)", "selected", "wall s",
                                             "peak RSS MB"])
        if "embed" in suites:
            r = call("embed", n=a.embed_docs, device=a.device)
            res["embed"] = r
            res["embed_table"] = print_table([{k: (f"{v:.1f}" if isinstance(v, float) else v) for k, v in r.items()}],
                                             list(r))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write_json("beam.json" if not a.quick else "beam-quick.json", res)
    if any(e["api"]["digest"] != e["beam"]["digest"] for e in res.get("e2e", [])):
        sys.exit("Beam selected different ids than the API")


if __name__ == "__main__":
    main()
