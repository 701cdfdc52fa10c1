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
    from lmsieve.cli.common import one_or_many
    from lmsieve.eval.harness import run_eval, summarize
    from lmsieve.eval.proxy import ProxyEval
    from lmsieve.eval.report import markdown_table, write_report
    from lmsieve.io.inputs import load_docs

    from lmsieve.cli.common import check_out, column_kw, keep_log

    check_out(args.out, "dir", example="eval.md, eval.json, plots")
    pool, _ = load_docs(one_or_many(args.pool), name="pool", **column_kw(args))
    target, _ = load_docs(one_or_many(args.target), name="target", **column_kw(args, target=True))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    proxy = ProxyEval(steps=args.proxy_steps, eval_every=max(1, args.proxy_steps // 6)) if args.proxy_steps > 0 else None
    seeds = list(range(args.seeds))
    keep_log(args.out)
    runs = run_eval(pool, target, methods, args.budget_chars, seeds, proxy=proxy,
                    max_target_examples=args.max_target_examples, decontaminate=not args.no_decontaminate,
                    progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    rows = summarize(runs)
    meta = {"pool": args.pool, "target": args.target, "methods": methods, "budget_chars": args.budget_chars,
            "seeds": seeds, "proxy_steps": args.proxy_steps, "max_target_examples": args.max_target_examples,
            "decontaminate": not args.no_decontaminate,
            "proxy_tokens": proxy.tokens if proxy else 0}
    paths = write_report(args.out, runs, rows, meta)
    print(markdown_table(rows))
    print("wrote " + ", ".join(paths.values()))
    return 0
