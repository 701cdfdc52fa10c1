"""Short benchmark targets: precision and speed of every selection mode on the shared pool.

For each target (default humaneval, heldout_code_python, heldout_math, champ, heldout_qa) and each
mode (paper DSIR/ZIP-FIT, their window modes, ``classifier``, ``knn``, random), fit on the target
(at most ``--max-target-examples`` examples, the lowest stable hashes: the same for every mode;
the pool minus those examples) and score the pool; report the target domain's share of the top
``--top`` (2%) documents by score (deterministic top-k over eligible documents), the fit and
scoring seconds, and documents/s per core (one core: ``pin_one_core``; other sessions share
this machine, so rates are lower bounds). Window mode's cost over paper mode is the ratio of
their rates. Writes ``benchmarks/out/short_targets.json``.

    python benchmarks/bench_short_targets.py [--targets humaneval] [--modes dsir,dsir-window,...]
        [--limit N] [--slow-limit N] [--device auto|cpu|cuda]

knn keeps its window embeddings in ``benchmarks/out/knn_store/`` (keyed by document id and a
fingerprint), so its rate is measured on the first target; later targets reuse the embeddings.
``--slow-limit`` caps the pool for the modes whose cost is per window x target pair or per
embedded window (``zipfit-window``, ``knn*``) on this CPU; 0 = whole pool. On a GPU, run the knn
modes on the whole pool with ``--modes knn,knn-doc --slow-limit 0 --device cuda``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, SHARED, machine, pin_one_core, print_table, write_json  # noqa: E402

MODES = {
    "dsir": ("dsir", {}),
    "dsir-window": ("dsir", {"unit": "window"}),
    "dsir-window-norm": ("dsir", {"unit": "window", "per_ngram": True}),
    "zipfit": ("zipfit", {}),
    "zipfit-window": ("zipfit", {"unit": "window"}),
    "classifier": ("classifier", {}),
    "classifier-window": ("classifier", {"unit": "window", "negative_unit": "window"}),
    "knn": ("knn", {}),
    "knn-doc": ("knn", {"unit": "doc"}),
    "random": ("random", {}),
}
SLOW = ("zipfit-window", "zipfit", "knn", "knn-doc")
DEFAULT_MODES = "dsir,dsir-window,dsir-window-norm,zipfit-window,classifier,classifier-window,knn,random"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="humaneval,heldout_code_python,heldout_math,champ,heldout_qa")
    ap.add_argument("--modes", default=DEFAULT_MODES)
    ap.add_argument("--top", type=float, default=0.02, help="fraction of documents whose precision is reported")
    ap.add_argument("--max-target-examples", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N pool documents (all modes)")
    ap.add_argument("--slow-limit", type=int, default=2000, help="pool cap for zipfit/knn modes (0 = whole pool)")
    ap.add_argument("--device", default="cpu", help="knn embedding device: auto, cpu or cuda")
    ap.add_argument("--knn-batch-size", type=int, default=0, metavar="N",
                    help="knn embedding batch size (default: knn's, 64; larger on a GPU)")
    ap.add_argument("--embed-model", default=None, metavar="PATH",
                    help="knn embedding model (a sentence-transformers directory); default: knn's packaged MiniLM")
    ap.add_argument("--out", default="short_targets.json")
    a = ap.parse_args()
    if a.device == "cpu":
        pin_one_core()

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from lmsieve.api import fit_and_score, run_selection
    from lmsieve.eval.harness import exclude_examples, target_domain_of
    from lmsieve.io.inputs import load_docs
    from lmsieve.sampling.hashing import stable_uniform
    from lmsieve.sampling.select import Budget

    if a.device == "cpu":
        torch.set_num_threads(1)
    pool_all, _ = load_docs(str(SHARED / "pool"), name="pool", columns=["id", "text", "domain"])
    if a.limit:
        pool_all = pool_all.slice(0, a.limit)
    rows = []
    for tname in [t for t in a.targets.split(",") if t]:
        target = pq.read_table(SHARED / "targets" / f"{tname}.parquet", columns=["id", "text", "domain"])
        if target.num_rows > a.max_target_examples:
            order = np.argsort(stable_uniform(0, target.column("id")), kind="stable")[: a.max_target_examples]
            target = target.take(pa.array(np.sort(order)))
        dom = target_domain_of(target)
        base, _ = exclude_examples(pool_all, target)
        for mode in [m for m in a.modes.split(",") if m]:
            method, params = MODES[mode]
            params = dict(params)
            if method == "knn":  # window embeddings stored once, reused by the other targets
                params.update(device=a.device, store=str(OUT / "knn_store" / mode))
                if a.embed_model:
                    params["embed_model"] = a.embed_model
                if a.knn_batch_size:
                    params["batch_size"] = a.knn_batch_size
            pool = base.slice(0, a.slow_limit) if (mode in SLOW and a.slow_limit) else base
            t0 = time.perf_counter()
            try:
                sel, s, e = fit_and_score(method, target, pool, **params)
            except Exception as exc:  # noqa: BLE001 - report and go on
                rows.append({"target": tname, "mode": mode, "error": f"{type(exc).__name__}: {exc}"[:200]})
                print(rows[-1], flush=True)
                continue
            secs = time.perf_counter() - t0
            res = run_selection(sel, pool, Budget(fraction=a.top), seed=0, ranking="topk", scores=s, eligible=e)
            doms = np.asarray(res.selected.column("domain").to_pylist(), dtype=object)
            base_rate = float(np.mean(np.asarray(pool.column("domain").to_pylist(), dtype=object) == dom))
            rows.append({"target": tname, "mode": mode, "docs": pool.num_rows, "selected": len(doms),
                         "precision": round(float(np.mean(doms == dom)), 3) if len(doms) else None,
                         "base_rate": round(base_rate, 3), "seconds": round(secs, 1),
                         "docs_per_s_per_core": round(pool.num_rows / secs, 1),
                         "window": getattr(sel, "window_", None)})
            print(rows[-1], flush=True)
    cols = ["target", "mode", "docs", "precision", "base_rate", "seconds", "docs_per_s_per_core", "window"]
    table = print_table([r for r in rows if "error" not in r], cols)
    setup = (f"Shared pool ({pool_all.num_rows:,} documents{' (first ' + str(a.limit) + ')' if a.limit else ''}); "
             f"at most {a.max_target_examples} target examples (the same for every mode); precision = the target "
             f"domain's share of the top {a.top:.0%} documents by score; "
             f"{', '.join(SLOW)} on the first {a.slow_limit or pool_all.num_rows:,} documents; docs/s on one core "
             "of a shared 2-core machine (other sessions running: lower bounds).")
    write_json(a.out, {"machine": machine(), "args": vars(a), "setup": setup, "rows": rows, "table": table})


if __name__ == "__main__":
    main()
