"""``verify_release``: re-check a release's checksums, file list, schema and counts.

Checks, each reported as a :class:`Mismatch` (file, what, expected, found), all of them, not just
the first:

1. ``checksums.sha256`` and ``manifest.json`` are present and readable;
2. the files on disk are exactly those listed in ``checksums.sha256`` (an extra or a missing file
   is a mismatch) and exactly those the manifest lists (shards, card files, the manifest);
3. every listed file has its sha256, and every shard and card file the bytes and sha256 the
   manifest records;
4. every shard is readable Parquet with the manifest's schema and row count;
5. the counts recomputed from the shards (documents, characters, UTF-8 bytes, tokens, per domain,
   per licence; :mod:`lmsieve.release.stats`) equal the manifest's, the released documents equal
   the selected ones (per domain too), the pool adds up (``input = selected + rejected +
   invalid``), and ids are unique across shards.

One shard is in memory at a time (its id column is kept for the uniqueness check).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lmsieve.io.parquet import sha256_file
from lmsieve.release.checksums import CHECKSUMS, read_checksums, release_files
from lmsieve.release.shards import schema_fields, shard_format
from lmsieve.release.source import MANIFEST
from lmsieve.release.writer import KIND
from lmsieve.release.stats import add_counts, release_counts
from lmsieve.schemas.document import ID
from lmsieve.schemas.errors import InputError, LmsieveError


@dataclass(frozen=True)
class Mismatch:
    file: str
    what: str
    expected: object
    found: object

    def __str__(self) -> str:
        return f"{self.file}: {self.what}: expected {self.expected}, found {self.found}"


class ReleaseMismatch(LmsieveError):
    """A release failed verification; ``mismatches`` lists every problem."""

    def __init__(self, root: str, mismatches: list[Mismatch]):
        self.mismatches = mismatches
        super().__init__(f"{root}: {len(mismatches)} mismatch(es); first: {mismatches[0]}")


def _files(root: str, listed: dict[str, str], manifest: dict) -> list[Mismatch]:
    out = []
    present = set(release_files(root))
    for f in sorted(present - set(listed)):
        out.append(Mismatch(f, "file not in checksums.sha256", "absent", "present"))
    for f in sorted(set(listed) - present):
        out.append(Mismatch(f, "file listed in checksums.sha256", "present", "missing"))
    hashes = {f: sha256_file(os.path.join(root, f)) for f in sorted(present)}
    for f in sorted(present & set(listed)):
        if hashes[f] != listed[f]:
            out.append(Mismatch(f, "sha256", listed[f], hashes[f]))
    entries = {e["path"]: e for e in manifest.get("shards", []) + manifest.get("files", [])}
    in_manifest = set(entries) | {MANIFEST}
    for f in sorted(set(listed) - in_manifest):
        out.append(Mismatch(f, "file not in manifest.json", "absent", "listed in checksums.sha256"))
    for f in sorted(in_manifest - set(listed)):
        out.append(Mismatch(f, "file in manifest.json, not in checksums.sha256", "listed", "not listed"))
    for f, e in sorted(entries.items()):
        if f not in hashes:
            continue
        size = os.path.getsize(os.path.join(root, f))
        if size != e.get("bytes"):
            out.append(Mismatch(f, "bytes (manifest.json)", e.get("bytes"), size))
        if hashes[f] != e.get("sha256"):
            out.append(Mismatch(f, "sha256 (manifest.json)", e.get("sha256"), hashes[f]))
    return out


def _shards(root: str, manifest: dict) -> tuple[list[Mismatch], dict]:
    out, parts, ids = [], [], []
    want_schema = manifest.get("schema")
    for e in manifest.get("shards", []):
        f = e["path"]
        fmt = shard_format(f)
        try:
            if fmt == "parquet":
                t = pq.read_table(os.path.join(root, f))
            else:
                from lmsieve.io.formats import read_any

                t = read_any(os.path.join(root, f))
        except (OSError, pa.ArrowException, InputError) as exc:
            out.append(Mismatch(f, f"readable {'Parquet' if fmt == 'parquet' else 'JSON Lines'}", "yes", f"no ({exc})"))
            continue
        if fmt != "parquet":  # JSON keeps the column names, not the Arrow types
            names = [x["name"] for x in want_schema or []]
            if t.column_names != names:
                out.append(Mismatch(f, "columns", names, t.column_names))
        elif schema_fields(t.schema) != want_schema:
            out.append(Mismatch(f, "schema", want_schema, schema_fields(t.schema)))
        if t.num_rows != e.get("rows"):
            out.append(Mismatch(f, "rows", e.get("rows"), t.num_rows))
        c = release_counts(t)
        for k in ("characters", "tokens"):
            if c[k] != e.get(k):
                out.append(Mismatch(f, k, e.get(k), c[k]))
        parts.append(c)
        if ID in t.column_names:
            ids.append(t.column(ID))
    total = add_counts(parts)
    if ids:
        all_ids = pa.chunked_array([c for a in ids for c in a.chunks], type=ids[0].type)
        n_distinct = pc.count_distinct(all_ids).as_py()
        if n_distinct != len(all_ids):
            out.append(Mismatch("data/", "distinct ids", len(all_ids), n_distinct))
    return out, total


def _counts(manifest: dict, total: dict) -> list[Mismatch]:
    out = []
    c = manifest.get("counts", {})
    rel = c.get("released", {})
    for k in sorted(set(rel) | set(total)):
        if rel.get(k) != total.get(k):
            out.append(Mismatch(MANIFEST, f"counts.released.{k} (recounted from the shards)", rel.get(k), total.get(k)))
    n_sel = c.get("selected", {}).get("documents")
    dec = (c.get("decontamination") or {}).get("release") or {}  # release --decontaminate (remove mode)
    removed, removed_dom = dec.get("removed", 0), dec.get("removed_per_domain", {})
    if n_sel is not None and total.get("documents") != n_sel - removed:
        out.append(Mismatch(MANIFEST, "released documents = counts.selected.documents", n_sel - removed,
                            total.get("documents")))
    pd = c.get("per_domain", {})
    if pd.get("selected") is not None:
        want = {k: v - removed_dom.get(k, 0) for k, v in pd["selected"].items() if v - removed_dom.get(k, 0)}
        if total.get("per_domain") != want:
            out.append(Mismatch(MANIFEST, "released per domain = counts.per_domain.selected", want,
                                total.get("per_domain")))
    pool, sel = c.get("pool", {}), c.get("selected", {})
    if pool.get("documents") is not None:
        parts = (sel.get("documents") or 0) + (sel.get("rejected") or 0) + (pool.get("invalid") or 0) \
            + (pool.get("contaminated") or 0)
        if parts != pool["documents"]:
            out.append(Mismatch(MANIFEST, "pool documents = selected + rejected + invalid", pool["documents"], parts))
    if sum(e.get("rows", 0) for e in manifest.get("shards", [])) != rel.get("documents"):
        out.append(Mismatch(MANIFEST, "sum of shard rows = counts.released.documents", rel.get("documents"),
                            sum(e.get("rows", 0) for e in manifest.get("shards", []))))
    return out


def verify_release(root: str, raise_on_mismatch: bool = False) -> list[Mismatch]:
    """Every mismatch found in the release at ``root`` (empty: it verifies)."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise InputError("not a directory", root)
    out: list[Mismatch] = []
    try:
        listed = read_checksums(root)
    except FileNotFoundError:
        listed = None
        out.append(Mismatch(CHECKSUMS, "file", "present", "missing"))
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        manifest = {}
        out.append(Mismatch(MANIFEST, "file", "present", "missing"))
    except (ValueError, UnicodeDecodeError) as exc:
        manifest = {}
        out.append(Mismatch(MANIFEST, "valid JSON", "yes", f"no ({exc})"))
    if listed is None and not (isinstance(manifest, dict) and manifest.get("kind") == KIND):
        # Neither a checksum list nor a release manifest: not a (damaged) release at all.
        what = (f"its manifest.json is a `{manifest.get('command')}` run's" if isinstance(manifest, dict)
                and manifest.get("command") else "no checksums.sha256 or release manifest.json")
        raise InputError(f"not a release ({what}); `lmsieve release` writes one from a selection", root)
    if not isinstance(manifest, dict) or (manifest and manifest.get("kind") != KIND):
        found = manifest.get("kind") if isinstance(manifest, dict) else "not a JSON object"
        out.append(Mismatch(MANIFEST, "kind", KIND, found))
        manifest = {}
    out += _files(root, listed or {}, manifest)
    if manifest:
        shard_problems, total = _shards(root, manifest)
        out += shard_problems + _counts(manifest, total)
    if out and raise_on_mismatch:
        raise ReleaseMismatch(root, out)
    return out


__all__ = ["Mismatch", "ReleaseMismatch", "verify_release"]
