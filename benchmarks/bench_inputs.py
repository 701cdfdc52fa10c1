"""Reading the same documents in every input format: rows/s and MB/s of ``lmsieve.io.load_docs``.

Writes the shared pool's first N documents (default: the whole pool, 20,438 docs / 128 MB of text)
as Parquet, JSONL, JSONL.gz, JSONL.zst, CSV and a Hugging Face ``datasets`` directory, then reads
each with validation (what every command does) and checks the ids and texts are identical.

    python benchmarks/bench_inputs.py [--docs N]      # table + benchmarks/out/bench_inputs.json
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED, machine, print_table, write_json  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=None, help="first N pool documents (default: all)")
    args = ap.parse_args(argv)
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    from lmsieve.io.inputs import load_docs

    table = pa.concat_tables(pq.read_table(p) for p in sorted((SHARED / "pool").glob("*.parquet")))
    if args.docs:
        table = table.slice(0, args.docs)
    text_mb = sum(len(t.encode()) for t in table.column("text").to_pylist()) / 1e6
    d = Path(tempfile.mkdtemp(prefix="lmsieve-bench-inputs-"))
    try:
        rows = table.to_pylist()
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
        paths = {"parquet": d / "p.parquet", "jsonl": d / "p.jsonl", "jsonl.gz": d / "p.jsonl.gz",
                 "jsonl.zst": d / "p.jsonl.zst", "csv": d / "p.csv", "datasets": d / "hf"}
        pq.write_table(table, paths["parquet"], compression="zstd")
        paths["jsonl"].write_bytes(lines)
        paths["jsonl.gz"].write_bytes(gzip.compress(lines, 6))
        paths["jsonl.zst"].write_bytes(zstandard.ZstdCompressor(level=3).compress(lines))
        table.to_pandas().to_csv(paths["csv"], index=False)
        datasets.Dataset(table).save_to_disk(str(paths["datasets"]))
        out = []
        for name, path in paths.items():
            size = sum(p.stat().st_size for p in Path(path).rglob("*")) if Path(path).is_dir() else path.stat().st_size
            t0 = time.perf_counter()
            got, _ = load_docs(str(path))
            dt = time.perf_counter() - t0
            same = got.column("id").equals(table.column("id")) and got.column("text").equals(table.column("text"))
            out.append({"format": name, "docs": got.num_rows, "file MB": round(size / 1e6, 1), "seconds": round(dt, 2),
                        "docs/s": round(got.num_rows / dt), "text MB/s": round(text_mb / dt, 1), "identical": same})
            if not same:
                raise SystemExit(f"{name}: read different ids or texts")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"{table.num_rows:,} documents, {text_mb:.0f} MB of text (2 shared cores; other sessions running)")
    print_table(out, ["format", "docs", "file MB", "seconds", "docs/s", "text MB/s", "identical"])
    res = {"machine": machine(), "docs": table.num_rows, "text_mb": text_mb, "rows": out}
    write_json("bench_inputs", res)
    return res


if __name__ == "__main__":
    main()
