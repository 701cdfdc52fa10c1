"""Shared helpers for benchmark scripts: the shared pool, one-core child processes, tables."""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LMSIEVE_SHARED_DATA", REPO.parent / "shared" / "data"))
#: Where JSON and plots go (``LMSIEVE_BENCH_OUT`` overrides: ``run_all.py --quick`` uses a scratch folder).
OUT = Path(os.environ.get("LMSIEVE_BENCH_OUT", REPO / "benchmarks" / "out"))


def pin_one_core() -> None:
    """Run this process on one core, single-threaded libraries: rates are per core."""
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    except (AttributeError, OSError):
        pass
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[v] = "1"
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(module_file: str, *args: str) -> dict:
    """Run ``python module_file --child args...`` and parse the JSON it prints last."""
    proc = subprocess.run([sys.executable, module_file, "--child", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def print_table(rows: list[dict], cols: list[str]) -> str:
    widths = [max(len(c), *(len(f"{r.get(c, '')}") for r in rows)) for c in cols]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(f"{r.get(c, '')}".ljust(w) for c, w in zip(cols, widths)) + " |")
    text = "\n".join(lines)
    print(text)
    return text


def write_json(name: str, data: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    p = OUT / name
    p.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {p}")
    return p
