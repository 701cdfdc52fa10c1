"""``checksums.sha256``: one ``<sha256>  <path>`` line per release file except itself, sorted by
path, paths relative to the release with ``/`` separators; the format of GNU ``sha256sum``, so
``cd RELEASE && sha256sum -c checksums.sha256`` checks it without lmsieve."""
from __future__ import annotations

import os
import re

from lmsieve.io.parquet import sha256_file
from lmsieve.schemas.errors import InputError

CHECKSUMS = "checksums.sha256"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def release_files(root: str) -> list[str]:
    """Every file under ``root`` (hidden ones too), relative, sorted, except the checksum file."""
    out = []
    for d, dirs, names in os.walk(root):
        dirs.sort()
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/")
            if rel != CHECKSUMS:
                out.append(rel)
    return sorted(out)


def write_checksums(root: str) -> dict[str, str]:
    sums = {rel: sha256_file(os.path.join(root, rel)) for rel in release_files(root)}
    with open(os.path.join(root, CHECKSUMS), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{h}  {rel}\n" for rel, h in sums.items())
    return sums


def read_checksums(root: str) -> dict[str, str]:
    path = os.path.join(root, CHECKSUMS)
    sums: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            m = _LINE.match(line.rstrip("\n"))
            if not m:
                raise InputError(f"not a '<sha256>  <path>' line: {line.rstrip()!r}", path, i)
            if m.group(2) in sums:
                raise InputError(f"{m.group(2)} listed twice", path, i)
            sums[m.group(2)] = m.group(1)
    return sums


__all__ = ["CHECKSUMS", "read_checksums", "release_files", "write_checksums"]
