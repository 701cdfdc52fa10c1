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
    from lmsieve.io.inputs import load_docs
    from lmsieve.io.output import RunOutput, write_shards
    from lmsieve.io.parquet import write_table
    from lmsieve.schemas.quarantine import QUARANTINE_FILE, Quarantine

    check_out(args.out, "dir", example="part-*.parquet, manifest.json")
    q = Quarantine(args.on_invalid, args.max_doc_bytes)
    table, files = load_docs(one_or_many(args.inputs), name="input", checksums=True, quarantine=q, **column_kw(args))
    with RunOutput(args.out) as out:
        outputs = write_shards(out, table, "part")
        if args.on_invalid == "quarantine":
            qt = q.table()
            write_table(qt, out.path(QUARANTINE_FILE))
            outputs.append({"path": QUARANTINE_FILE, "rows": qt.num_rows})
        from lmsieve import __version__

        manifest = {"manifest_version": 1, "lmsieve_version": __version__, "command": "convert",
                    "params": {"text_column": args.text_column, "id_column": args.id_column},
                    "inputs": {"input": [f.to_dict() for f in files]},
                    "counts": {"input": q.n_read, "written": table.num_rows, "quarantined": q.n,
                               "quarantined_by_reason": q.counts()},
                    "outputs": outputs}
        path = out.commit(manifest)
    print(f"converted {table.num_rows} of {q.n_read} documents from {len(files)} file(s) -> {args.out}")
    print(f"manifest: {path}")
    return 0
