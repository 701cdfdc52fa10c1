"""``lmsieve convert``: any input lmsieve reads -> Parquet shards with ``id``/``text`` (for Beam jobs,
datatrove steps and anything else that takes Parquet only).

The same reader as every other command (:mod:`lmsieve.io.formats`, column mapping and generated ids
in :mod:`lmsieve.io.columns`), so a converted corpus has exactly the ids ``lmsieve select`` gives the
original files.
"""
from __future__ import annotations


def add_parser(sub) -> None:
    from lmsieve.cli.common import INPUT_FORMATS, add_column_args, add_invalid_args

    p = sub.add_parser(
        "convert", help="convert JSONL / CSV / a datasets directory to lmsieve Parquet (id, text, ...)",
        description="Read documents in any format lmsieve reads (" + INPUT_FORMATS + "), map the text and id "
                    "columns, generate ids where there are none (FILE_NAME:ROW), validate, and write "
                    "DIR/part-NNNNN-of-NNNNN.parquet and DIR/manifest.json. Beam jobs (lmsieve run) and "
                    "datatrove steps read Parquet: convert other formats with this first.",
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="file(s), directory or glob")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_column_args(p, target=False)
    add_invalid_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.cli.common import check_out, column_kw, one_or_many
    from lmsieve.io.convert import convert

    check_out(args.out, "dir", example="part-*.parquet, manifest.json")
    m, path = convert(one_or_many(args.inputs), args.out, on_invalid=args.on_invalid,
                      max_doc_bytes=args.max_doc_bytes, **column_kw(args))
    c = m["counts"]
    print(f"converted {c['written']} of {c['input']} documents from {len(m['inputs']['input'])} file(s) -> {args.out}")
    print(f"manifest: {path}")
    return 0
