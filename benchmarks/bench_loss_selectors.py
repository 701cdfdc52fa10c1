"""Loss-based selectors (CoLoR-Filter, MATES, PreSelect) next to DSIR and random: cost and quality.

On the first ``--limit`` shared-pool documents (text cut to ``--max-chars`` characters so the tiny
CPU proxies finish), with a target set from ``../shared/data/targets`` (``heldout_code_python`` by
default, or ``humaneval``), each method is fitted (pool = its own pool sample) and scores the pool;
we report fit seconds, scoring milliseconds per document and the share of the target domain
(``code_python``) among its top ``--keep`` (5%) documents, each with its paper's ranking (DSIR:
Gumbel; MATES: Gumbel at temperature 0.5, lower is better; the others top-k). The domain labels
are read only here. Proxies are tiny byte-level Llamas (2 layers, width 64, context 128) so that
the whole run takes minutes on two shared cores; the numbers say how the methods behave at this
scale, not at the papers'. ``--model smollm2-135m`` (or any model dir) makes it CoLoR-Filter's
prior and joins PreSelect's family (``models=[M]`` + the three default proxies); meant for a GPU
(``--device cuda``).

    python benchmarks/bench_loss_selectors.py [--limit 1000] [--target humaneval] [--methods color,mates]
    python benchmarks/bench_loss_selectors.py --model smollm2-135m --device cuda --methods random,dsir,color,preselect

Writes ``benchmarks/out/loss_selectors.json``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, machine, print_table, write_json  # noqa: E402

TINY = {"n_layer": 2, "d_model": 64, "n_head": 2, "context": 128}


def method_params(name: str, steps: int, model: str | None = None, device: str = "auto") -> dict:
    train = {"steps": steps, "batch_size": 16, "lr": 3e-3, "warmup_steps": 30}
    if model and name == "color":  # the paper's 512-token chunks on a real prior
        return dict(tau=20, chunk_len=512, model=model, device=device)
    if model and name == "preselect":
        return dict(models=[model], proxies=[{"model": TINY, "train": train, "mixture": m} for m in (0.0, 0.5, 1.0)],
                    bucket=200_000, device=device)
    if name == "color":
        return dict(tau=20, chunk_len=128, proxy_model=TINY, proxy_train=train, batch_tokens=8192,
                    finetune_train={"batch_size": 32})
    if name in ("mates", "mates_topk"):
        return dict(proxy_model=TINY, proxy_train=train, n_probe=150, ref_windows=16, epochs=40, val_fraction=0.2)
    if name == "preselect":
        # three proxies of one size on 0/50/100% target-like mixtures (see lmsieve/selectors/preselect.py)
        return dict(proxies=[{"model": TINY, "train": train, "mixture": m} for m in (0.0, 0.5, 1.0)], bucket=200_000)
    if name == "dsir":
        return {}
    return {}


def oracle_auc(sel, pool, is_t) -> float:
    """P(a probed target-domain candidate has lower loss-after than a probed other one)."""
    import numpy as np

    from lmsieve.sampling.hashing import stable_hash64

    pick = np.argsort(stable_hash64(sel.get_params()["seed"], pool.column("id").to_pylist()), kind="stable")
    y, t = sel.oracle_, is_t[pick[: len(sel.oracle_)]]
    return float(np.mean(y[t][:, None] < y[~t][None, :])) if t.any() and (~t).any() else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--max-chars", type=int, default=1500)
    ap.add_argument("--target", default="heldout_code_python")
    ap.add_argument("--n-targets", type=int, default=80)
    ap.add_argument("--keep", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--methods", default="random,dsir,color,preselect,mates,mates_topk")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", help="a real LM (fetched name or dir) for color's prior and preselect's family")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import torch

    from lmsieve.api import fit_and_score, run_selection
    from lmsieve.sampling.select import Budget

    torch.set_num_threads(args.threads)
    files = sorted((SHARED / "pool").glob("*.parquet"))
    pool = pa.concat_tables([pq.read_table(f) for f in files]).combine_chunks().slice(0, args.limit)
    pool = pool.set_column(pool.schema.get_field_index("text"), "text",
                           pc.utf8_slice_codeunits(pool.column("text"), 0, args.max_chars))
    target = pq.read_table(SHARED / "targets" / f"{args.target}.parquet").slice(0, args.n_targets)
    is_t = np.array(pool.column("domain").to_pylist()) == "code_python"
    rows, fitted = [], {}
    for name in args.methods.split(","):
        params = method_params(name, args.steps, args.model, args.device)
        t0 = time.perf_counter()
        try:
            if name == "mates_topk" and "mates" in fitted:  # the same fitted MATES, ranked without noise
                sel, (s, e) = fitted["mates"], fitted["mates_scores"]
            else:
                sel, s, e = fit_and_score(name.replace("_topk", ""), target, pool, **params)
        except Exception as exc:  # noqa: BLE001 - a benchmark row records the failure
            rows.append({"method": name, "error": f"{type(exc).__name__}: {exc}"})
            print(name, "failed:", exc)
            continue
        t_all = time.perf_counter() - t0
        t1 = time.perf_counter()
        sel.score(pool.slice(0, 200))
        per_doc = (time.perf_counter() - t1) / 200
        t_fit = max(0.0, t_all - per_doc * pool.num_rows)
        if name == "mates":
            fitted["mates"], fitted["mates_scores"] = sel, (s, e)
        kw = {"temperature": 0.5} if name == "mates" else {"ranking": "topk"} if name == "mates_topk" else {}
        res = run_selection(sel, pool, Budget(fraction=args.keep), seed=0, **kw)
        prec = float(is_t[res.indices].mean()) if len(res.indices) else float("nan")
        row = {"method": name, "ranking": res.ranking, "fit_s": round(t_fit, 1), "score_ms_per_doc": round(per_doc * 1e3, 2),
               f"precision@{args.keep:g}": round(prec, 3), "selected": len(res.indices)}
        if hasattr(sel, "report_"):
            row["note"] = f"influence spearman {sel.report_['spearman']:.2f}, oracle AUC code<other " \
                          f"{oracle_auc(sel, pool, is_t):.2f}"
        if hasattr(sel, "label_counts_"):
            row["note"] = f"labels {sel.label_counts_}"
        rows.append(row)
        print(row, flush=True)
    base = float(is_t.mean())
    cols = ["method", "ranking", "fit_s", "score_ms_per_doc", f"precision@{args.keep:g}", "selected", "note", "error"]
    table = print_table(rows, cols)
    write_json("loss_selectors.json" if not args.model else f"loss_selectors_{Path(args.model).name}.json", {
        "model": args.model, "machine": machine(), "limit": args.limit, "max_chars": args.max_chars, "target": args.target,
        "n_targets": args.n_targets, "keep": args.keep, "proxy_steps": args.steps, "torch_threads": args.threads,
        "target_domain_base_rate": round(base, 4), "rows": rows, "table": table,
    })


if __name__ == "__main__":
    main()
