"""``lmsieve select``: keep the pool documents that best match a target; write them and a manifest."""
from __future__ import annotations


from lmsieve.cli.common import add_invalid_args, add_method_args, check_out, column_kw, one_or_many, parse_params


def method_notes() -> str:
    """Per-method parameter notes (a selector's ``cli_note``) for the help's epilog."""
    from lmsieve.selectors.base import available_methods, get_selector_class

    notes = [f"{m}: {get_selector_class(m).cli_note}" for m in available_methods()
             if getattr(get_selector_class(m), "cli_note", "")]
    return ("method parameters (--param KEY=VALUE) -- " + "; ".join(notes)) if notes else ""


def _with_guide(p) -> None:
    """Keep the epilog's paragraphs (wrapped here) and append the which-method-when guide."""
    import argparse
    import textwrap

    from lmsieve.cli.method_guide import method_guide

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = textwrap.fill(p.epilog or "", 100) + "\n\n" + method_guide()


def add_parser(sub) -> None:
    p = sub.add_parser(
        "select", help="select the pool documents closest to a target",
        description="Score the pool against the target with METHOD and keep a budget of documents. Writes "
                    "DIR/selected-*.parquet (selected documents, all input columns, input order), "
                    "DIR/scores.parquet (id, score, eligible, selected) and DIR/manifest.json (written last).",
        epilog="Fit once, score many times: methods that train models (color, mates, preselect, meta_rater) "
               "save their fitted state with --save-fitted FITTED; later runs on other pools or shards pass "
               "--param fitted=FITTED and skip fitting (no pool sample needed; also what Beam jobs use). "
               "See docs/selectors-loss.md. `lmsieve methods` lists every method with its paper, parameters, "
               "defaults and when to use it; `lmsieve methods METHOD` one method's parameters with types.",
    )
    add_method_args(p)
    p.epilog = " ".join(x for x in (p.epilog, method_notes()) if x)
    _with_guide(p)
    add_invalid_args(p)
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--keep-fraction", type=float, metavar="F", help="keep floor(F x documents)")
    budget.add_argument("--keep", type=int, metavar="N", help="keep N documents")
    budget.add_argument("--keep-chars-fraction", type=float, metavar="F",
                        help="keep the best documents until they hold F of all characters")
    budget.add_argument("--threshold", type=float, metavar="T",
                        help="keep every eligible document scoring at least T (at most T for methods where lower "
                             "is better: `lmsieve methods`); the same rule as the datatrove LmsieveFilter")
    p.add_argument("--seed", type=int, default=0, help="seed of the stable (seed, id) hash (default 0)")
    p.add_argument("--ranking", choices=["topk", "gumbel"], default=None,
                   help="topk: deterministic best-first; gumbel: sample without replacement "
                        "(default: the method's paper default: dsir gumbel, zipfit topk)")
    p.add_argument("--temperature", type=float, default=None,
                   help="Gumbel temperature (default: the method's, mates 0.5, else 1)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--save-fitted", metavar="FITTED",
                   help="also save the fitted selector to FITTED (reuse it with --param fitted=FITTED)")
    from lmsieve.features.decontam.apply import add_cli_args

    add_cli_args(p)
    p.add_argument("--no-resume", action="store_true",
                   help="recompute every step, ignoring finished steps recorded in DIR/.lmsieve-runs/ "
                        "(by default a rerun of the same configuration skips them; docs/resume.md)")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.api import make_budget
    from lmsieve.features.decontam.apply import from_args
    from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES
    from lmsieve.selection.run import select_run

    check_out(args.out, "dir", example="selected-*.parquet, scores.parquet, manifest.json")
    budget = make_budget(args.keep if args.keep is not None else args.keep_fraction, args.keep_chars_fraction,
                         getattr(args, "threshold", None))
    tcols = column_kw(args, target=True)
    res = select_run(
        one_or_many(args.pool), args.method, one_or_many(args.target), budget, params=parse_params(args.param),
        seed=args.seed, ranking=args.ranking, temperature=args.temperature, out=args.out,
        resume=not args.no_resume, save_fitted=args.save_fitted, progress=not args.no_progress,
        on_invalid=args.on_invalid, max_doc_bytes=getattr(args, "max_doc_bytes", DEFAULT_MAX_DOC_BYTES),
        decontaminate=from_args(args), **column_kw(args),
        target_text_column=tcols["text_column"], target_id_column=tcols["id_column"])
    c = res.manifest["counts"]
    print(f"selected {c['selected']} of {c['input']} documents "
          f"({c['characters']['selected'] / max(1, c['characters']['input']):.1%} of characters) -> {args.out}")
    print(f"manifest: {res.manifest_path}")
    return 0
