"""Bundled sample data (a small slice of the shared pool, see sample/LICENSES.md)."""
from __future__ import annotations

from importlib import resources


def sample_path(name: str) -> str:
    """Path of a bundled sample file: ``pool.parquet`` or ``target_code_python.parquet``."""
    p = resources.files("lmsieve.data").joinpath("sample", name)
    if not p.is_file():
        raise FileNotFoundError(f"bundled sample {name!r} is missing from the lmsieve package")
    return str(p)
