"""``lmsieve prefilter``: datatrove's quality filters and MinHash dedup before a selection.

A thin front for :func:`lmsieve.integrations.datatrove.run_prefilter` (see ``docs/datatrove.md``).
"""
from __future__ import annotations

import json

from lmsieve.cli.common import one_or_many, parse_params
from lmsieve.schemas.errors import ConfigError

FILTER_NAMES = ("gopher", "gopher_repetition", "c4", "fineweb")  # lmsieve.integrations.datatrove.QUALITY_FILTERS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prefilter", help="drop low-quality and near-duplicate documents with datatrove before selecting",
        description="Read Parquet shards (id/text columns) with datatrove's ParquetReader, apply datatrove's "
                    "heuristic quality filters (Gopher, Gopher repetition, C4 without bad words, FineWeb) and "
                    "optionally its MinHash near-duplicate removal, and write prefiltered-*.parquet with the "
                    "input's columns to --out, with manifest.json (counts dropped per filter and reason) last. "
                    "`lmsieve select --pool OUT/` reads the result.",
    )
    p.add_argument("--input", required=True, nargs="+", metavar="P",
                   help="Parquet file(s), directory or glob with id/text columns (other formats: `lmsieve convert` "
                        "first)")
    p.add_argument("--out", required=True, help="local output directory")
    p.add_argument("--filters", default="gopher,c4,fineweb",
                   help=f"comma-separated, applied in order; any of {', '.join(FILTER_NAMES)}; '' for none "
                        "(default: gopher,c4,fineweb)")
    p.add_argument("--filter-param", action="append", default=[], metavar="FILTER.KEY=VALUE",
                   help="keyword argument of a datatrove filter, VALUE in JSON (e.g. gopher.min_doc_words=20)")
    p.add_argument("--minhash", action="store_true", help="also remove near-duplicates with datatrove's MinHash")
    p.add_argument("--minhash-param", action="append", default=[], metavar="KEY=VALUE",
                   help="MinhashConfig field (n_grams, num_buckets, hashes_per_bucket, seed)")
    p.add_argument("--allow-text-edits", action="store_true",
                   help="keep the text edits some filters make (c4 drops lines); the manifest then counts edited "
                        "documents and characters removed and the original text is kept in text_before_edit. "
                        "Default: filters only decide keep/drop; kept documents' text is byte-identical")
    p.add_argument("--tasks", type=int, default=1, help="datatrove tasks (input files are dealt to tasks)")
    p.add_argument("--workers", type=int, default=1, help="processes running the tasks")
    p.set_defaults(func=run)


def _filter_params(items: list[str]) -> dict:
    out: dict[str, dict] = {}
    for key, value in parse_params(items).items():
        name, dot, arg = key.partition(".")
        if not dot or not arg:
            raise ConfigError(f"--filter-param {key!r}: expected FILTER.KEY=VALUE")
        out.setdefault(name, {})[arg] = value
    return out


def run(args) -> int:
    from lmsieve.integrations.datatrove import run_prefilter

    filters = [f.strip() for f in args.filters.split(",") if f.strip()]
    report = run_prefilter(one_or_many(args.input), args.out, filters=filters,
                           filter_params=_filter_params(args.filter_param), minhash=args.minhash,
                           minhash_params=parse_params(args.minhash_param), tasks=args.tasks, workers=args.workers,
                           allow_text_edits=args.allow_text_edits)
    dropped = {f: sum(r.values()) for f, r in report.dropped.items()}
    print(f"read {report.read} of {report.input_rows} documents (skipped {report.skipped_empty_text} with empty text); "
          f"dropped per filter {json.dumps(dropped)}; minhash removed {report.minhash_removed}; "
          f"kept {report.output_rows} -> {args.out}")
    if report.text_edits_allowed:
        print(f"text edited (kept in {'text_before_edit'}): documents {json.dumps(report.text_edited)}, "
              f"characters removed {json.dumps(report.text_chars_removed)}")
    elif any(report.text_edits_undone.values()):
        print(f"text unchanged: filters' edits undone for {json.dumps(report.text_edits_undone)} documents "
              "(--allow-text-edits keeps them)")
    return 0
