"""``lmsieve decontaminate``: build an overlap index of evaluation sets, or audit a selection/release.

    lmsieve decontaminate build --eval humaneval.parquet champ=champ.jsonl --out idx/ [--n 13] [--bloom 1e-9]
    lmsieve decontaminate check SELECTION_OR_RELEASE_DIR --eval idx/ [--top 10] [--json report.json]
"""
from __future__ import annotations



def add_parser(sub) -> None:
    from lmsieve.features.decontam import DEFAULT_COLUMNS, DEFAULT_MIN_WORDS, DEFAULT_N

    p = sub.add_parser(
        "decontaminate", help="index evaluation sets; audit a selection or release for their n-grams",
        description="build: normalise evaluation items (NFKC, lower case, punctuation and whitespace collapsed), "
                    "hash their word n-grams into a sorted index (or Bloom filters) and save it to --out. "
                    "check: flag the documents of a selection or release directory that contain evaluation "
                    "items and list the worst offenders with the matched span. See docs/decontamination.md.",
    )
    sp = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sp.add_parser("build", help="build and save an overlap index")
    b.add_argument("--eval", required=True, nargs="+", metavar="[NAME=]FILE",
                   help="evaluation set files (any format lmsieve reads); NAME defaults to the file stem")
    b.add_argument("--out", required=True, metavar="INDEX", help="index directory to write")
    b.add_argument("--n", type=int, default=DEFAULT_N, help=f"words per n-gram (default {DEFAULT_N})")
    b.add_argument("--min-words", type=int, default=DEFAULT_MIN_WORDS,
                   help=f"shorter items are matched whole down to this many words (default {DEFAULT_MIN_WORDS})")
    b.add_argument("--columns", nargs="+", default=list(DEFAULT_COLUMNS),
                   help=f"item fields to index, those present (default: {' '.join(DEFAULT_COLUMNS)})")
    b.add_argument("--bloom", type=float, metavar="FPR",
                   help="store Bloom filters with this false-positive rate per lookup instead of the exact array")
    b.set_defaults(func=run_build)
    c = sp.add_parser("check", help="audit a selection or release directory")
    c.add_argument("dir", metavar="DIR", help="selection directory, release directory or Parquet files' directory")
    c.add_argument("--eval", required=True, nargs="+", metavar="INDEX_OR_FILES", help="a saved index or evaluation files")
    c.add_argument("--min-overlap", type=int, default=1, metavar="K", help="default 1")
    c.add_argument("--top", type=int, default=10, help="worst offenders to list (default 10)")
    c.add_argument("--json", metavar="PATH", help="also write the audit as JSON")
    c.set_defaults(func=run_check)


def run_build(args) -> int:
    from lmsieve.features.decontam import build_index

    idx = build_index(args.eval, n=args.n, min_words=args.min_words, columns=args.columns, bloom_fpr=args.bloom)
    idx.save(args.out)
    for s in idx.sets:
        print(f"{s['name']}: {s['items']} items, {s['ngrams']} {idx.n}-grams, {s['whole_items']} short fields "
              f"matched whole, {s['too_short']} fields under {idx.min_words} words not indexed")
    print(f"index -> {args.out}")
    return 0


def run_check(args) -> int:
    from lmsieve.features.decontam.apply import Decontaminator
    from lmsieve.features.decontam.audit import audit_dir

    decon = Decontaminator.from_spec(args.eval, "report", args.min_overlap)
    rep = audit_dir(args.dir, decon, args.top, json_path=args.json)
    share = rep["contaminated"] / max(1, rep["documents"])
    print(f"{rep['contaminated']} of {rep['documents']} documents ({share:.2%}) contain evaluation items: "
          + ", ".join(f"{k} {v}" for k, v in rep["by_set"].items()))
    for o in rep["offenders"]:
        print(f"  {o['id']}: {o['matches']} n-grams of {o['item'] or ','.join(o['eval_sets'])}: {o['span']!r}")
    return 0
