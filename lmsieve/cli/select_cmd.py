"""``lmsieve select``: keep the pool documents that best match a target; write them and a manifest."""
from __future__ import annotations


import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.cli.common import (add_invalid_args, add_method_args, check_out, column_kw, keep_log, one_or_many,
                                parse_params, scores_table)



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


def _drop_contaminated(decon, record, pool, scores, eligible):
    return (pool, scores, eligible) if decon is None else decon.drop(pool, scores, eligible, record)


def run(args) -> int:
    from lmsieve.api import drop_nonfinite, load_pool, make_budget
    from lmsieve.cli.select_steps import fit_score_sample, open_run, run_config
    from lmsieve.io.inputs import load_docs
    from lmsieve.io.output import RunOutput, write_shards
    from lmsieve.io.parquet import write_table
    from lmsieve.schemas.manifest import build_manifest, domain_counts
    from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, QUARANTINE_FILE, manifest_counts

    check_out(args.out, "dir", example="selected-*.parquet, scores.parquet, manifest.json")
    params = parse_params(args.param)
    on_invalid = getattr(args, "on_invalid", "error")  # callers that build their own Namespace (demo)
    max_doc_bytes = getattr(args, "max_doc_bytes", DEFAULT_MAX_DOC_BYTES)
    pool, pool_files, quarantine = load_pool(one_or_many(args.pool), args.method, params, on_invalid,
                                             max_doc_bytes, checksums=True, **column_kw(args))
    target, target_files = load_docs(one_or_many(args.target), name="target", checksums=True,
                                     **column_kw(args, target=True))
    if target.num_rows == 0:
        from lmsieve.schemas.errors import ConfigError

        raise ConfigError(f"{', '.join(f.path for f in target_files)}: the target set is empty (0 documents)")
    from lmsieve.features.decontam.apply import CONTAMINATED_FILE, from_args

    decon, drecord = from_args(args), None
    if decon is not None:  # flags now; in remove mode the flagged leave between scoring and sampling
        dflags, drecord = decon.screen(pool, progress=not getattr(args, "no_progress", True))
    budget = make_budget(args.keep if args.keep is not None else args.keep_fraction, args.keep_chars_fraction,
                         getattr(args, "threshold", None))
    config = run_config(args.method, params, seed=args.seed, budget=budget, ranking=args.ranking,
                        temperature=args.temperature, pool_files=pool_files, target_files=target_files,
                        extra={"on_invalid": on_invalid, "max_doc_bytes": max_doc_bytes,
                               **({"decontaminate": decon.params()} if decon is not None else {})})
    run_dir = open_run(args.out, config, resume=not getattr(args, "no_resume", False))  # demo builds its own args
    keep_log(args.out)  # inputs and parameters are valid: from here on OUT holds the run's log
    sel, res = fit_score_sample(run_dir, args.method, params, target, pool, budget, seed=args.seed,
                                ranking=args.ranking, temperature=args.temperature, progress=not args.no_progress,
                                screen=lambda p, s, e: _drop_contaminated(decon, drecord,
                                                                           *drop_nonfinite(quarantine, p, s, e)))
    pool = res.table  # without documents whose score is not finite (quarantined)
    if getattr(args, "save_fitted", None):
        sel.save(args.save_fitted)
    chosen = res.selected
    mask = np.zeros(pool.num_rows, dtype=bool)
    mask[res.indices] = True
    chars = pc.utf8_length(pool.column("text")).to_numpy(zero_copy_only=False).astype(np.int64)
    with RunOutput(args.out) as out:
        outputs = write_shards(out, chosen, "selected")
        # With separate DSIR targets, scores.parquet holds the best score over targets.
        flat = res.scores if res.scores.ndim == 1 else res.scores.max(axis=1)
        sc = scores_table(pool.column("id"), flat, res.eligible).append_column("selected", pa.array(mask))
        write_table(sc, out.path("scores.parquet"))
        outputs.append({"path": "scores.parquet", "rows": sc.num_rows})
        if on_invalid == "quarantine":
            qt = quarantine.table()
            write_table(qt, out.path(QUARANTINE_FILE))
            outputs.append({"path": QUARANTINE_FILE, "rows": qt.num_rows})
        if decon is not None:
            write_table(drecord, out.path(CONTAMINATED_FILE))
            outputs.append({"path": CONTAMINATED_FILE, "rows": drecord.num_rows})
        n_in, n_sel = quarantine.n_read, int(mask.sum())
        counts = {
            **manifest_counts(n_in, n_sel, quarantine.counts()), "ineligible": int((~res.eligible).sum()),
            "characters": {"input": int(chars.sum()), "selected": int(chars[mask].sum())},
        }
        if decon is not None:
            decon.account(counts, dflags, chosen.column("id").to_pylist())
        if "domain" in pool.column_names:
            dom = pool.column("domain").to_pylist()
            counts["per_domain"] = {"input": domain_counts(dom), "selected": domain_counts(dom, np.flatnonzero(mask))}
        manifest = build_manifest(
            command="select", method=sel.name, params=sel.get_params(), seed=args.seed,
            selection={"budget": res.budget.to_dict(), "ranking": res.ranking,
                       "temperature": sel.default_temperature if args.temperature is None else args.temperature},
            inputs={"pool": [f.to_dict() for f in pool_files], "target": [f.to_dict() for f in target_files]},
            counts=counts, outputs=outputs,
        )
        path = out.commit(manifest)
    run_dir.prune_others()
    print(f"selected {n_sel} of {n_in} documents ({counts['characters']['selected'] / max(1, counts['characters']['input']):.1%} of characters) -> {args.out}")
    print(f"manifest: {path}")
    return 0
