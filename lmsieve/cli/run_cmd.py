"""``lmsieve run JOB.toml [beam flags]``: run a job spec's Beam pipelines (features, then selection)."""
from __future__ import annotations

import argparse
import json


def _own_parser(add_help: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=add_help)
    _own_args(p)
    return p


def _own_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", action="store_true", help="validate the spec (and the Beam flags) and exit")
    p.add_argument("--stage", choices=["all", "features", "selection"], default=None,
                   help="run only the features job or only the selection job (default: all the spec has)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a spec key, VALUE in TOML (e.g. --set selection.seed=3), repeatable")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.add_argument("--schema", action="store_true",
                   help="print the job spec schema (JSON Schema: every table, key, type, default, description) and exit")
    p.add_argument("--dataflow-job-file", metavar="FILE", default=None,
                   help="render the Dataflow job request(s) to FILE (JSON, plus FILE.pipeline.pb) without "
                        "submitting: Beam's DataflowRunner --dry_run, no credentials, no data read (needs .[gcp])")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "run", help="run a job spec (TOML) as Apache Beam pipelines",
        description="Run the features job and/or the selection job described by JOB.toml (see jobs/*.toml). "
                    "Any other flag is passed to Beam: locally the default is --runner FnApiRunner "
                    "(add --direct_running_mode multi_processing --direct_num_workers N for CPU-heavy jobs); "
                    "on Dataflow: --runner DataflowRunner --project P --region R --temp_location gs://... "
                    "--sdk_container_image IMAGE. lmsieve's own options can also be given as "
                    "--lmsieve_stage / --lmsieve_set / --lmsieve_progress_secs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _own_args(p)
    p.add_argument("job", metavar="JOB.toml", nargs="?", help="job spec (see --schema)")
    p.add_argument("beam_args", nargs=argparse.REMAINDER, help="Beam pipeline flags")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.pipelines.jobspec import load_spec, run_job
    from lmsieve.pipelines.options import LmsieveOptions, make_options, runner_name

    own, beam_flags = _own_parser().parse_known_args(args.beam_args or [])
    if args.schema or own.schema:
        from lmsieve.pipelines.spec_schema import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    if not args.job:
        from lmsieve.schemas.errors import ConfigError

        raise ConfigError("run: give a job spec (JOB.toml), or --schema")
    check = args.check or own.check
    no_progress = args.no_progress or own.no_progress
    lm = make_options(beam_flags).view_as(LmsieveOptions)
    stage = own.stage or args.stage or lm.lmsieve_stage or "all"
    overrides = list(args.overrides) + list(own.overrides) + list(lm.lmsieve_set or [])
    spec = load_spec(args.job, overrides=overrides, beam_flags=beam_flags)
    if check:
        parts = [n for n, t in (("features", spec.features), ("selection", spec.selection)) if t]
        runner = runner_name(make_options(spec.beam_flags() + beam_flags))
        print(f"{args.job}: valid ({spec.name}: {' + '.join(parts)}; runner {runner})")
        return 0
    job_file = args.dataflow_job_file or own.dataflow_job_file
    if job_file:
        from lmsieve.pipelines.dataflow import render_job_files

        for f in render_job_files(spec, beam_flags, job_file, stage):
            print(f"{args.job}: Dataflow job request written to {f} (not submitted)")
        return 0
    progress = 0.0 if no_progress else lm.lmsieve_progress_secs
    out = (spec.selection or {}).get("out") or (spec.features or {}).get("out")
    if out:
        from lmsieve.cli.common import keep_log

        keep_log(out)  # the spec is valid: from here on OUT keeps the run's log
    import logging
    import time

    log, t0 = logging.getLogger("lmsieve.run"), time.monotonic()
    log.info("run %s (stage %s, beam flags %s)", args.job, stage, " ".join(beam_flags) or "none")
    res = run_job(spec, beam_flags, stage=stage, progress_secs=progress)
    log.info("run %s finished in %.1f s", args.job, time.monotonic() - t0)
    if res.selection and "counts" in res.selection:
        c = res.selection["counts"]
        log.info("selected %s of %s documents (%s invalid) -> %s", c["selected"], c["input"], c["invalid"],
                 spec.selection["out"])
        print(json.dumps({"selected": c["selected"], "input": c["input"], "invalid": c["invalid"],
                          "out": spec.selection["out"]}))
    return 0
