"""``lmsieve eval``: what each method's selection buys, next to random, over several seeds."""
from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval", help="compare selection methods on one pool and target (precision, KL reduction, proxy loss)",
        description="For each method and seed, select the same character budget from the pool, then report "
                    "target-domain precision (when the pool and target carry a domain label), the KL "
                    "reduction on hashed n-grams, and the held-out target loss of a tiny proxy LM trained "
                    "from scratch on the selection. The target is split per seed into a selection half and "
                    "an evaluation half; evaluation examples are removed from the pool. Writes eval.md, "
                    "eval.json and PNG plots to --out.",
    )
    p.add_argument("--pool", required=True, nargs="+", metavar="P", help="pool Parquet file(s), directory or glob")
    p.add_argument("--target", required=True, nargs="+", metavar="T", help="target examples (Parquet)")
    p.add_argument("--methods", default="dsir,zipfit,random", help="comma-separated (default dsir,zipfit,random)")
    p.add_argument("--budget-chars", type=int, required=True, metavar="N", help="characters to select per method")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds 0..S-1 (default 3)")
    p.add_argument("--proxy-steps", type=int, default=300,
                   help="proxy training steps of 16 x 256 bytes (default 300); 0 skips the proxy loss")
    p.add_argument("--max-target-examples", type=int, default=None, metavar="N",
                   help="show every method at most N selection-half examples (bounds ZIP-FIT's cost)")
    p.add_argument("--no-decontaminate", action="store_true",
                   help="keep pool documents that contain evaluation examples (default: each method's budget is "
                        "filled without them, and the report gives the share its selection had before removal)")
    p.add_argument("--out", required=True, metavar="DIR")
    from lmsieve.cli.common import add_column_args

    add_column_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.cli.common import check_out, column_kw, keep_log, one_or_many
    from lmsieve.eval.evaluate import evaluate
    from lmsieve.eval.report import markdown_table

    check_out(args.out, "dir", example="eval.md, eval.json, plots")
    keep_log(args.out)
    tcols = column_kw(args, target=True)
    res = evaluate(one_or_many(args.pool), one_or_many(args.target),
                   [m.strip() for m in args.methods.split(",") if m.strip()], args.budget_chars, out=args.out,
                   seeds=args.seeds, proxy_steps=args.proxy_steps, max_target_examples=args.max_target_examples,
                   decontaminate=not args.no_decontaminate, **column_kw(args),
                   target_text_column=tcols["text_column"], target_id_column=tcols["id_column"],
                   progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(markdown_table(res.rows))
    print("wrote " + ", ".join(res.paths.values()))
    return 0
