"""``python -m lmsieve.pipelines --lmsieve_job JOB.toml [beam flags]`` (a launcher entry point)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from lmsieve.cli.main import main as cli_main
    from lmsieve.pipelines.options import LmsieveOptions, make_options

    argv = list(sys.argv[1:] if argv is None else argv)
    job = make_options(argv).view_as(LmsieveOptions).lmsieve_job
    if not job:
        print("usage: python -m lmsieve.pipelines --lmsieve_job JOB.toml [beam flags]", file=sys.stderr)
        return 2
    rest = [a for a in argv if not a.startswith("--lmsieve_job")]
    if f"--lmsieve_job={job}" not in argv and job in rest:
        rest.remove(job)
    return cli_main(["run", job, *rest])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
