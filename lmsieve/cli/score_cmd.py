"""``lmsieve score``: one score per document, written as Parquet (id, score, eligible)."""
from __future__ import annotations

from lmsieve.cli.common import add_invalid_args, add_method_args, check_out, column_kw, one_or_many, parse_params


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
    from lmsieve.features.decontam.apply import from_args
    from lmsieve.selection.score_run import quarantine_path, score_run

    check_out(args.out, "file", example="scores.parquet")
    tcols = column_kw(args, target=True)
    decon = from_args(args)
    res = score_run(one_or_many(args.pool), args.method, one_or_many(args.target), params=parse_params(args.param),
                    out=args.out, progress=not args.no_progress, on_invalid=args.on_invalid,
                    max_doc_bytes=args.max_doc_bytes, decontaminate=decon, **column_kw(args),
                    target_text_column=tcols["text_column"], target_id_column=tcols["id_column"])
    q = res.quarantine
    bad = f"; {q.n} quarantined {q.counts()} -> {quarantine_path(args.out)}" if args.on_invalid == "quarantine" else ""
    print(f"scored {len(res.scores)} documents ({int(res.table(decon and decon.mode).column('eligible').to_numpy().sum())} eligible)"
          f"{bad} -> {args.out}")
    return 0
