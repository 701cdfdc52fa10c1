"""Does selection help? ``lmsieve eval`` on the whole shared pool, for several targets.

For each target (default ``heldout_code_python``, ``heldout_math``, ``humaneval``) and each seed,
every method selects the same character budget from the pool (minus the target's evaluation
half), and the harness reports target-domain precision, KL reduction on hashed n-grams and the
held-out loss of a tiny byte-level proxy LM trained from scratch on the selection (same model,
tokens and seed for every method). Mean ± std over seeds and the ratio to random. Writes each
target's report (eval.md, eval.json, PNGs) under ``benchmarks/out/eval/<target>/`` and the
combined table to ``benchmarks/out/eval.json``.

    python benchmarks/bench_eval.py [--quick] [--targets a,b] [--methods dsir,zipfit,random]

``--methods`` also takes the short-target modes of ``bench_short_targets.py`` (``dsir-window``,
``dsir-window-norm``, ``zipfit-window``, ``classifier``, ``classifier-window``, ``knn``,
``knn-doc``); ``--device cuda`` embeds for knn on a GPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, SHARED, machine, peak_rss_mb, print_table, write_json  # noqa: E402


def fmt(row: dict, key: str, digits: int) -> str:
    if key not in row:
        return "n/a"
    if row.get("seeds", 1) < 2:  # one seed: no spread to show
        return f"{row[key]:.{digits}f}"
    return f"{row[key]:.{digits}f} ± {row.get(key + '_std', 0.0):.{digits}f}"


def combined_table(results: list[dict]) -> list[dict]:
    out = []
    for res in results:
        for r in res["rows"]:
            out.append({
                "target": res["target"], "method": r["method"],
                "precision": fmt(r, "precision", 2),
                "precision / random": f"{r['precision_vs_random']:.2f}×" if "precision_vs_random" in r else "n/a",
                "KL reduction": fmt(r, "kl_reduction", 3),
                "proxy loss (nats/byte)": fmt(r, "proxy_loss", 3),
                "loss / random": f"{r['proxy_loss_vs_random']:.3f}" if "proxy_loss_vs_random" in r else "n/a",
            })
    return out


def mode_params(methods: list[str], device: str, embed_model: str | None = None,
                knn_store: bool = False, batch_size: int = 0) -> dict[str, dict]:
    """``method_params`` for the labelled short-target modes (``dsir-window`` -> dsir, unit=window);
    knn modes also get ``embed_model`` when given, and with ``knn_store`` the window-embedding
    store ``bench_short_targets.py`` uses (``benchmarks/out/knn_store/<mode>``), so the pool is
    embedded once for all targets and seeds (and not again after that script)."""
    from bench_short_targets import MODES

    out = {}
    for m in methods:
        if m in MODES and (MODES[m][0] != m or MODES[m][1]):
            out[m] = {"method": MODES[m][0], **MODES[m][1]}
        if MODES.get(m, (m,))[0] == "knn":
            out.setdefault(m, {"method": "knn"})["device"] = device
            if embed_model:
                out[m]["embed_model"] = embed_model
            if knn_store:
                out[m]["store"] = str(OUT / "knn_store" / m)
            if batch_size:
                out[m]["batch_size"] = batch_size
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="heldout_code_python,heldout_math,humaneval")
    ap.add_argument("--methods", default="dsir,zipfit,random")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget-fraction", type=float, default=0.02,
                    help="characters to select, as a fraction of the pool's (default 0.02)")
    ap.add_argument("--proxy-steps", type=int, default=150)
    ap.add_argument("--max-target-examples", type=int, default=64,
                    help="selection-half examples every method sees (bounds ZIP-FIT's cost; default 64)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N pool documents")
    ap.add_argument("--quick", action="store_true", help="2,000 documents, 1 seed, 60 proxy steps")
    ap.add_argument("--device", default="cpu", help="knn embedding device: auto, cpu or cuda")
    ap.add_argument("--knn-batch-size", type=int, default=0, metavar="N",
                    help="knn embedding batch size (default: knn's, 64; larger on a GPU)")
    ap.add_argument("--embed-model", default=None, metavar="PATH",
                    help="knn embedding model (a sentence-transformers directory); default: knn's packaged MiniLM")
    ap.add_argument("--knn-store", action="store_true",
                    help="keep knn window embeddings in benchmarks/out/knn_store/<mode> (shared with "
                         "bench_short_targets.py): the pool is embedded once, not per target and seed")
    ap.add_argument("--out", default="eval.json", help="JSON file name under benchmarks/out/")
    a = ap.parse_args()
    if a.quick:
        a.limit, a.seeds, a.proxy_steps = a.limit or 2000, 1, 60

    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import torch

    from lmsieve.eval.harness import run_eval, summarize
    from lmsieve.eval.proxy import ProxyEval
    from lmsieve.eval.report import write_report
    from lmsieve.io.inputs import load_docs

    torch.set_num_threads(1)
    pool, _ = load_docs(str(SHARED / "pool"), name="pool")
    if a.limit:
        pool = pool.slice(0, a.limit)
    pool_chars = int(pc.sum(pc.utf8_length(pool.column("text"))).as_py())
    budget = int(a.budget_fraction * pool_chars)
    methods = [m for m in a.methods.split(",") if m]
    seeds = list(range(a.seeds))
    proxy = ProxyEval(steps=a.proxy_steps, eval_every=max(1, a.proxy_steps // 3), eval_docs=32)
    results = []
    t_all = time.perf_counter()
    for name in a.targets.split(","):
        target = pq.read_table(SHARED / "targets" / f"{name}.parquet", columns=["id", "text", "domain"])
        t0 = time.perf_counter()
        runs = run_eval(pool, target, methods, budget, seeds, proxy=proxy, max_target_examples=a.max_target_examples,
                        method_params=mode_params(methods, a.device, a.embed_model, a.knn_store, a.knn_batch_size),
                        progress=lambda msg, n=name: print(f"[{time.perf_counter() - t_all:7.0f}s] {n} {msg}",
                                                           flush=True))
        rows = summarize(runs)
        meta = {"pool": f"shared pool ({pool.num_rows:,} docs, {pool_chars:,} chars)", "target": name,
                "methods": methods, "budget_chars": budget, "seeds": seeds, "proxy_steps": a.proxy_steps,
                "proxy_tokens": proxy.tokens, "max_target_examples": a.max_target_examples}
        write_report(str(OUT / Path(a.out).stem / name), runs, rows, meta)
        results.append({"target": name, "rows": rows, "wall_s": round(time.perf_counter() - t0, 1)})
    table = print_table(combined_table(results), ["target", "method", "precision", "precision / random",
                                                  "KL reduction", "proxy loss (nats/byte)", "loss / random"])
    setup = (f"Whole shared pool ({pool.num_rows:,} documents, {pool_chars / 1e6:.0f}M characters); every method "
             f"selects {budget:,} characters ({a.budget_fraction:.0%}); {len(seeds)} seeds; the target is split per "
             f"seed into a selection half (at most {a.max_target_examples} examples shown to every method) and an "
             f"evaluation half (removed from the pool; 32 examples scored); proxy: "
             f"{proxy.model['n_layer']}-layer, {proxy.model['d_model']}-wide byte-level LM trained from scratch for "
             f"{a.proxy_steps} steps ({proxy.tokens:,} tokens) on each selection, loss on the evaluation half. "
             f"Mean ± std over seeds.")
    write_json(a.out, {"machine": machine(), "quick": a.quick, "setup": setup, "results": results,
                             "table": table, "wall_s": round(time.perf_counter() - t_all, 1),
                             "peak_rss_mb": round(peak_rss_mb())})


if __name__ == "__main__":
    main()
