"""A datatrove pipeline with an lmsieve DSIR filter step, run locally.

    python jobs/datatrove_dsir.py --pool POOL --target TARGET.parquet --out out/datatrove-dsir \
        [--keep-fraction 0.2 | --threshold T] [--gopher | --no-gopher] [--tasks 2] [--fit-rows 20000]

1. Fit DSIR (Xie et al., NeurIPS 2023) with lmsieve's API on the target and the first
   ``--fit-rows`` pool documents (DSIR's raw distribution), save it to ``OUT/selector/``.
2. A keep-fraction becomes a score threshold on that same pool sample
   (``threshold_for_fraction``: a streaming filter never sees the whole pool).
3. datatrove, ``LocalPipelineExecutor`` (``--tasks`` tasks, one worker):
   ``ParquetReader`` -> ``GopherQualityFilter`` -> ``LmsieveScorer`` (adds ``lmsieve_score``,
   ``lmsieve_eligible``) -> ``LmsieveFilter`` (``score >= threshold``) -> ``ParquetWriter``
   (``OUT/selected/``: the input's columns plus the score and eligibility).
4. Prints datatrove's merged stats; ``OUT/logs/stats.json`` holds them too.

POOL: Parquet file(s), directory or glob with ``id``/``text`` columns (the default is the sample
bundled with lmsieve; its target is ``sample:target_code_python.parquet``). Gopher's rules are for
prose and drop nearly all code, so by default (``auto``) the Gopher step runs only when the target
is not code (its ``domain`` column does not start with ``code``); ``--gopher`` / ``--no-gopher``
decide explicitly. See ``docs/datatrove.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", nargs="+", default=["sample:pool.parquet"], help="Parquet file(s), directory or glob")
    p.add_argument("--target", nargs="+", default=["sample:target_code_python.parquet"], help="target Parquet")
    p.add_argument("--out", default="out/datatrove-dsir", help="output directory")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--keep-fraction", type=float, default=0.2, help="share of the pool sample to keep (default 0.2)")
    g.add_argument("--threshold", type=float, default=None, help="keep documents with DSIR log weight >= T")
    p.add_argument("--gopher", dest="gopher", action="store_const", const=True, default=None,
                   help="run datatrove's Gopher quality filter (prose rules: it drops nearly all code)")
    p.add_argument("--no-gopher", dest="gopher", action="store_const", const=False,
                   help="skip it (default: skip it when the target's domain is code, run it otherwise)")
    p.add_argument("--tasks", type=int, default=1, help="datatrove tasks (input files are dealt to tasks)")
    p.add_argument("--fit-rows", type=int, default=20000, help="pool documents DSIR's raw distribution is fitted on")
    return p.parse_args(argv)


def _sample(path: str) -> str:
    from lmsieve.data import sample_path

    return sample_path(path.removeprefix("sample:")) if path.startswith("sample:") else path


def main(argv=None) -> dict:
    args = parse_args(argv)
    import shutil

    import pyarrow as pa
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import GopherQualityFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    from lmsieve.api import fit_selector
    from lmsieve.integrations.datatrove import LmsieveFilter, LmsieveScorer, threshold_for_fraction
    from lmsieve.integrations.datatrove.documents import ColumnsAdapter, inspect_input
    from lmsieve.integrations.datatrove.scorer import DEFAULT_ELIGIBLE_KEY, DEFAULT_SCORE_KEY
    from lmsieve.io.inputs import Paths, load_docs

    pool, target = Paths([_sample(p) for p in args.pool]), Paths([_sample(p) for p in args.target])
    sample = load_docs(pool, name="pool", columns=["id", "text"])[0]
    sample = sample.slice(0, args.fit_rows)
    tgt = load_docs(target, name="target")[0]
    if args.gopher is None:  # auto: Gopher's prose rules would drop a code target's matches
        doms = set(tgt.column("domain").to_pylist()) if "domain" in tgt.column_names else set()
        args.gopher = not (doms and all(str(d).startswith("code") for d in doms))
        print(f"Gopher quality filter: {'on' if args.gopher else 'off (code target)'} (--gopher/--no-gopher to choose)",
              file=sys.stderr)
    selector = fit_selector("dsir", tgt, pool=sample)
    selector.save(os.path.join(args.out, "selector"))
    threshold = args.threshold if args.threshold is not None else threshold_for_fraction(selector, sample, args.keep_fraction)

    inp = inspect_input(pool)
    schema = inp.schema.append(pa.field(DEFAULT_SCORE_KEY, pa.float64())).append(pa.field(DEFAULT_ELIGIBLE_KEY, pa.bool_()))
    paths_file = os.path.join(args.out, "input_paths.txt")
    os.makedirs(args.out, exist_ok=True)
    shutil.rmtree(os.path.join(args.out, "selected"), ignore_errors=True)  # no stale shards from an earlier run
    pipeline = [
        ParquetReader(inp.folder, paths_file=inp.write_paths_file(paths_file)),
        *([GopherQualityFilter()] if args.gopher else []),
        LmsieveScorer(os.path.join(args.out, "selector")),          # a saved selector: loaded once per step
        LmsieveFilter(threshold),
        ParquetWriter(os.path.join(args.out, "selected"), output_filename="${rank}.parquet", compression="zstd",
                      adapter=ColumnsAdapter(tuple(schema.names)), schema=schema),
    ]
    stats = LocalPipelineExecutor(pipeline, tasks=args.tasks, workers=1, logging_dir=os.path.join(args.out, "logs"),
                                  skip_completed=False).run()
    summary = {"threshold": threshold, "stats": {s.name: {k: v.total for k, v in s.stats.items()} for s in stats.stats}}
    print(json.dumps(summary, indent=2, default=float, ensure_ascii=False))
    return summary


if __name__ == "__main__":
    main()
    sys.exit(0)
