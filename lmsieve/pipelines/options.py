"""lmsieve's pipeline options, and Beam options with a safe local default runner.

``LmsieveOptions`` carries lmsieve's own arguments through Beam's option machinery (so they also
work as Flex Template parameters). All are prefixed ``lmsieve_`` to stay clear of Beam's flags:

* ``--lmsieve_job PATH``: the job spec (TOML) to run;
* ``--lmsieve_stage {all,features,selection}``: run one job of the spec only;
* ``--lmsieve_set KEY=VALUE`` (repeatable): override a spec key, e.g. ``selection.seed=3``;
* ``--lmsieve_progress_secs S``: local progress line interval (0: off).

Runner default: FnApiRunner. Beam's default ``DirectRunner`` first tries Prism, which downloads a Go
binary from GitHub (a hang or a failure offline), so lmsieve never leaves the runner unset.
"""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

DEFAULT_RUNNER = "FnApiRunner"
LOCAL_RUNNERS = {"FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner", "PrismRunner"}


class LmsieveOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--lmsieve_job", default=None, help="job spec (TOML) to run")
        parser.add_argument("--lmsieve_stage", default="all", choices=["all", "features", "selection"],
                            help="run only the features job or only the selection job of the spec")
        parser.add_argument("--lmsieve_set", action="append", default=None, metavar="KEY=VALUE",
                            help="override a job spec key (VALUE is TOML), repeatable")
        parser.add_argument("--lmsieve_progress_secs", type=float, default=10.0,
                            help="seconds between local progress lines per process (0: off)")


def beam_flags_from_table(table: dict) -> list[str]:
    """``[beam]`` spec table -> command-line flags (lists repeat the flag; booleans are switches)."""
    flags: list[str] = []
    for k, v in table.items():
        if isinstance(v, bool):
            if v:
                flags.append(f"--{k}")
        elif isinstance(v, list):
            flags.extend(f"--{k}={x}" for x in v)
        else:
            flags.append(f"--{k}={v}")
    return flags


def make_options(flags: list[str] | None = None, **overrides) -> PipelineOptions:
    """PipelineOptions from flags, with FnApiRunner unless a runner is given."""
    opts = PipelineOptions(list(flags or []), **overrides)
    std = opts.view_as(StandardOptions)
    if not std.runner:
        std.runner = DEFAULT_RUNNER
    return opts


def runner_name(opts: PipelineOptions) -> str:
    r = opts.view_as(StandardOptions).runner or DEFAULT_RUNNER
    return r if isinstance(r, str) else type(r).__name__


def is_local(opts: PipelineOptions) -> bool:
    return runner_name(opts) in LOCAL_RUNNERS


__all__ = ["DEFAULT_RUNNER", "LmsieveOptions", "beam_flags_from_table", "is_local", "make_options", "runner_name"]
