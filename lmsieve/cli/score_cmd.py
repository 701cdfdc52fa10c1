"""``lmsieve score``: one score per document, written as Parquet (id, score, eligible)."""
from __future__ import annotations

import os

import pyarrow as pa

from lmsieve.cli.common import (add_invalid_args, add_method_args, check_out, column_kw, one_or_many, parse_params,
                                scores_table)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score", help="score every pool document against a target",
        description="Fit METHOD on the target (and, for DSIR, the pool's n-gram distribution), score every "
                    "pool document and write id, score, eligible to --out (higher is better).",
    )
    add_method_args(p)
    add_invalid_args(p)
    p.add_argument("--out", required=True, help="output Parquet file, e.g. scores.parquet (with --on-invalid "
                                                 "quarantine also OUT_STEM.quarantine.parquet beside it)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    from lmsieve.features.decontam.apply import add_cli_args

    add_cli_args(p)  # adds a `contaminated` column; remove mode also makes those documents ineligible
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.api import drop_nonfinite, fit_and_score, load_pool, load_target
    from lmsieve.io.parquet import write_table

    check_out(args.out, "file", example="scores.parquet")
    params = parse_params(args.param)
    pool, _, q = load_pool(one_or_many(args.pool), args.method, params, args.on_invalid, args.max_doc_bytes,
                           columns=["id", "text"], **column_kw(args))
    target = load_target(one_or_many(args.target), **column_kw(args, target=True))
    sel, scores, eligible = fit_and_score(args.method, target, pool, progress=not args.no_progress, **params)
    pool, scores, eligible = drop_nonfinite(q, pool, scores, eligible)
    out = args.out
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    table = scores_table(pool.column("id"), scores, eligible)
    from lmsieve.features.decontam.apply import from_args

    decon = from_args(args)
    if decon is not None:
        flagged = decon.flags(pool).flagged
        if decon.mode == "remove":
            eligible = eligible & ~flagged
            table = table.set_column(2, "eligible", pa.array(eligible))
        table = table.append_column("contaminated", pa.array(flagged))
    outs = [(table, out)]
    if args.on_invalid == "quarantine":
        outs.append((q.table(), quarantine_path(out)))
    for table, path in outs:
        write_table(table, path + ".tmp")
        os.replace(path + ".tmp", path)
    bad = f"; {q.n} quarantined {q.counts()} -> {quarantine_path(out)}" if args.on_invalid == "quarantine" else ""
    print(f"scored {len(scores)} documents ({int(eligible.sum())} eligible){bad} -> {out}")
    return 0


def quarantine_path(out: str) -> str:
    """``scores.parquet`` -> ``scores.quarantine.parquet`` (beside the scores)."""
    stem = out[:-len(".parquet")] if out.endswith(".parquet") else out
    return stem + ".quarantine.parquet"
