"""``lmsieve score``: one score per document, written as Parquet (id, score, eligible)."""
from __future__ import annotations

import os

from lmsieve.cli.common import add_method_args, one_or_many, parse_params, scores_table


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score", help="score every pool document against a target",
        description="Fit METHOD on the target (and, for DSIR, the pool's n-gram distribution), score every "
                    "pool document and write id, score, eligible to --out (higher is better).",
    )
    add_method_args(p)
    p.add_argument("--out", required=True, help="output Parquet file, e.g. scores.parquet")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.api import fit_and_score
    from lmsieve.io.inputs import load_docs
    from lmsieve.io.parquet import write_table

    pool, _ = load_docs(one_or_many(args.pool), name="pool", columns=["id", "text"])
    sel, scores, eligible = fit_and_score(args.method, one_or_many(args.target), pool, progress=not args.no_progress,
                                          **parse_params(args.param))
    out = args.out
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    tmp = out + ".tmp"
    write_table(scores_table(pool.column("id"), scores, eligible), tmp)
    os.replace(tmp, out)
    print(f"scored {len(scores)} documents ({int(eligible.sum())} eligible) -> {out}")
    return 0
