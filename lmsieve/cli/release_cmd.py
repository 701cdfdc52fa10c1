"""``lmsieve release``: turn a selection directory into a publishable dataset release."""
from __future__ import annotations

import re

from lmsieve.schemas.errors import ConfigError

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def parse_bytes(text: str) -> int:
    """``268435456``, ``256MiB``, ``500MB``, ``1GiB`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"--target-shard-bytes {text!r}: expected a number with an optional unit "
                          "(KB, MB, GB, KiB, MiB, GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def add_parser(sub) -> None:
    p = sub.add_parser(
        "release", help="package a selection as a dataset release (Parquet shards, card, manifest, checksums)",
        description="Read a finished selection (from `lmsieve select` or the Beam selection job) and write "
                    "RELEASE_DIR/data/train-*.parquet (zstd, one schema, near-equal sizes), README.md (dataset "
                    "card with composition and score plots), manifest.json (provenance and counts) and "
                    "checksums.sha256. Check it with `lmsieve verify RELEASE_DIR`. See docs/release.md.",
    )
    p.add_argument("--selection", required=True, metavar="DIR", help="a finished selection directory")
    p.add_argument("--out", required=True, metavar="RELEASE_DIR",
                   help="release directory (replaced if it already holds an lmsieve release)")
    p.add_argument("--name", required=True, help="dataset name (card title)")
    p.add_argument("--description", default="", help="a paragraph for the card")
    p.add_argument("--max-rows-per-shard", type=int, default=100_000, metavar="N", help="default 100000")
    p.add_argument("--target-shard-bytes", type=parse_bytes, default=256 << 20, metavar="BYTES",
                   help="about this many bytes of (uncompressed) data per shard, e.g. 256MiB (default)")
    p.add_argument("--license", action="append", default=[], metavar="ID",
                   help="licence identifier for the card's front matter (SPDX, e.g. bsd-3-clause), repeatable")
    p.add_argument("--license-file", metavar="PATH",
                   help="licence notes to carry as LICENSES.md (default: a LICENSES.md/LICENSE/COPYING "
                        "beside the pool's input files, if any)")
    p.add_argument("--job-spec", metavar="PATH", help="job spec (e.g. jobs/x.toml) to carry as job.toml")
    from lmsieve.features.decontam.apply import add_cli_args

    add_cli_args(p)
    p.add_argument("--format", choices=["parquet", "jsonl", "jsonl.gz"], default="parquet",
                   help="shard format: zstd Parquet (default), or JSON Lines (one object per document, all "
                        "columns; .jsonl.gz compressed) for trainers that read JSONL; verify checks either")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmsieve.features.decontam.apply import from_args
    from lmsieve.release import make_release

    m = make_release(args.selection, args.out, name=args.name, max_rows_per_shard=args.max_rows_per_shard,
                     target_shard_bytes=args.target_shard_bytes, licenses=args.license,
                     license_file=args.license_file, job_spec=args.job_spec, description=args.description,
                     decontaminate=from_args(args), fmt=args.format)
    c = m["counts"]["released"]
    print(f"released {c['documents']:,} documents ({c['characters']:,} characters, {c['tokens']:,} tokens) "
          f"in {len(m['shards'])} shard(s) -> {args.out}")
    return 0
