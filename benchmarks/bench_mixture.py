"""Mixture optimisation end to end on the shared pool: which mixture of 4 domains trains the proxy
LM with the lowest loss on held-out Python code, and what finding it costs.

Methods, each with a budget of ``--runs`` target-fidelity proxy runs: qLogEI (single fidelity,
replaying a candidate pool), cost-aware multi-fidelity MES (a cheaper fidelity at cost 0.1), and
random Dirichlet search. Every recommendation, the uniform and the natural mixture (token shares
of the pool) are then trained at the target fidelity and compared on the target loss. Also
Meta-rater's weight search on the spec's synthetic check (`meta_rater.png`).

    python benchmarks/bench_mixture.py            # ~10-15 min on the 2-core machine
    python benchmarks/bench_mixture.py --quick    # ~1 min: qLogEI only, tiny proxies

Writes ``benchmarks/out/mixture.json`` (with a markdown ``table``) and the plots of
:mod:`lmsieve.mixtures.report` under ``benchmarks/out/mixture/``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, SHARED, machine, pin_one_core, print_table, write_json  # noqa: E402

DOMAINS = ["code_python", "tech_docs", "literature", "dictionary"]
TARGET = "heldout_code_python"


def meta_rater_weights(out_dir: Path) -> dict:
    """Meta-rater's weight search on the spec's synthetic check (25 scaled features, hidden quality
    z3 + z17; a "proxy run" = mean hidden quality of the top 15 % under w), plotted like a real run."""
    import numpy as np

    from lmsieve.mixtures.report import plot_meta_rater
    from lmsieve.selectors.meta_rater import scale_0_5, search_weights

    t0 = time.perf_counter()
    rng = np.random.Generator(np.random.PCG64(5))
    Z = rng.normal(size=(4000, 25))
    q, Xs = Z[:, 3] + Z[:, 17], scale_0_5(Z, Z.min(0), Z.max(0))

    def proxy_loss(W):
        S = Xs @ W.T
        m = S >= np.percentile(S, 85, axis=0)
        return -(q[:, None] * m).sum(0) / m.sum(0) + rng.normal(0, 0.01, len(W))

    w = search_weights(proxy_loss, 25, n_runs=256, n_candidates=50_000)["weights"]
    names = [f"z{i}" for i in range(25)]
    plot_meta_rater(names, w, str(out_dir / "meta_rater.png"))
    return {"weights": dict(zip(names, map(float, w))), "share_on_z3_z17": float(w[3] + w[17]),
            "loss": float(proxy_loss(w[None])[0]), "loss_uniform": float(proxy_loss(np.full((1, 25), 1 / 25))[0]),
            "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", type=int, default=8000, help="first N pool rows (all domains mixed)")
    ap.add_argument("--runs", type=int, default=12, help="budget in target-fidelity runs per method")
    ap.add_argument("--meta-rater-only", action="store_true", help="only the Meta-rater weight plot (merged into "
                                                                    "an existing mixture.json)")
    a = ap.parse_args()
    pin_one_core()
    if a.meta_rater_only:
        import json

        (OUT / "mixture").mkdir(parents=True, exist_ok=True)
        prev = json.loads((OUT / "mixture.json").read_text()) if (OUT / "mixture.json").exists() else {}
        mr = meta_rater_weights(OUT / "mixture")
        write_json("mixture.json", {**prev, "meta_rater": mr,
                                    "plots": sorted(p.name for p in (OUT / "mixture").glob("*.png"))})
        return
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import torch

    torch.set_num_threads(1)
    from lmsieve.mixtures.mixing import natural_mixture
    from lmsieve.mixtures.optimize import evaluate_mixture, optimise
    from lmsieve.mixtures.report import write_report
    from lmsieve.mixtures.runs import Fidelity, ProxyRunner, RunTable

    files = sorted((SHARED / "pool").glob("*.parquet"))
    pool = pa.concat_tables([pq.read_table(f) for f in files]).slice(0, 3000 if a.quick else a.rows)
    pool = pool.filter(pc.is_in(pool.column("domain"), value_set=pa.array(DOMAINS))).combine_chunks()
    target = pq.read_table(SHARED / "targets" / f"{TARGET}.parquet")
    if a.quick:
        hi = Fidelity("tiny", model={"n_layer": 1, "d_model": 32, "n_head": 2, "context": 64}, steps=50, cost=1.0)
        lo, methods, n_runs, budget, eval_docs = None, ["qlogei"], min(a.runs, 8), 60_000, 48
    else:
        hi = Fidelity("small", model={"n_layer": 2, "d_model": 64, "n_head": 4, "context": 128}, steps=200, cost=1.0)
        lo = Fidelity("tiny", model={"n_layer": 1, "d_model": 32, "n_head": 2, "context": 64}, steps=50, cost=0.1)
        methods, n_runs, budget, eval_docs = ["qlogei", "mf-mes", "random"], a.runs, 450_000, 128
    runner = ProxyRunner(pool, {TARGET: target}, budget_tokens=budget, eval_docs=eval_docs, eval_chars=1024)
    natural = natural_mixture(pool, DOMAINS)
    uniform = {d: 1 / len(DOMAINS) for d in DOMAINS}
    out_dir = OUT / "mixture"
    out_dir.mkdir(parents=True, exist_ok=True)
    shared = RunTable(out_dir / "reference_runs.parquet")  # uniform/natural at the target fidelity
    ref = {name: evaluate_mixture(runner, w, hi, TARGET, shared) for name, w in (("uniform", uniform),
                                                                                  ("natural", natural))}
    rows, results = [], {}
    for m in methods:
        t0 = time.perf_counter()
        table = RunTable(out_dir / f"runs_{m}.parquet")
        fids = [hi] if m != "mf-mes" else [lo, hi]
        res = optimise(runner, DOMAINS, TARGET, table, fidelities=fids, method=m, n_init=1 if m == "mf-mes" else 3,
                       n_runs=n_runs, n_candidates=256, seed=0)
        wall = time.perf_counter() - t0
        rec_loss = evaluate_mixture(runner, res["recommended"], hi, TARGET, shared)
        run_rows = list(res["runs"])
        write_report(str(out_dir), rows=run_rows, components=DOMAINS, target=TARGET, recommended=res["recommended"],
                     natural=natural, others={"uniform": uniform}, prefix=f"{m}_",
                     extra={"loss_recommended": rec_loss, **{f"loss_{k}": v for k, v in ref.items()}, "wall_s": wall})
        results[m] = {"recommended": res["recommended"], "loss_recommended": rec_loss, "wall_s": wall,
                      "runs": len(run_rows), "cost": float(sum(r["fidelity_cost"] for r in run_rows)),
                      "runs_by_fidelity": {f.name: sum(r["fidelity"] == f.name for r in run_rows) for f in fids}}
        rows.append({"method": m, "wall s": f"{wall:.0f}", "runs (by fidelity)": ", ".join(
                         f"{k} {v}" for k, v in results[m]["runs_by_fidelity"].items()),
                     "cost": f"{results[m]['cost']:.1f}",
                     "recommended": ", ".join(f"{d} {w:.2f}" for d, w in res["recommended"].items()),
                     "loss rec.": f"{rec_loss:.4f}", "loss uniform": f"{ref['uniform']:.4f}",
                     "loss natural": f"{ref['natural']:.4f}"})
    table = print_table(rows, list(rows[0]))
    mr = meta_rater_weights(out_dir)
    print(f"Meta-rater (synthetic, hidden quality z3 + z17): {mr['share_on_z3_z17']:.2f} of the weight on z3, z17")
    write_json("mixture.json", {"meta_rater": mr, "machine": machine(), "quick": a.quick, "domains": DOMAINS,
                                "target": TARGET,
                                "pool_docs": pool.num_rows, "natural": natural, "reference_losses": ref,
                                "fidelities": {f.name: {"steps": f.steps, "cost": f.cost, **f.model}
                                               for f in (lo, hi) if f}, "budget_tokens": budget,
                                "eval_docs": eval_docs, "results": results, "rows": rows, "table": table,
                                "plots": sorted(p.name for p in out_dir.glob("*.png"))})


if __name__ == "__main__":
    main()
