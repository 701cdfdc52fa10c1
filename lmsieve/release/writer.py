"""``make_release``: a selection directory in, a publishable dataset release out.

Layout of ``RELEASE_DIR`` (loadable with ``datasets.load_dataset("parquet", data_files=...)``, and
as a Hugging Face dataset repository through the card's ``configs``)::

    data/train-00000-of-0000N.parquet   zstd Parquet, one schema, near-equal sizes (shards.py)
    README.md, composition.png, scores.png   the dataset card (card.py)
    LICENSES.md, job.toml               carried licence notes and job spec, when there are any
    manifest.json                       provenance and counts (sorted keys, no timestamps)
    checksums.sha256                    sha256 of every other file (checksums.py)

The release is built in a hidden sibling directory and swapped in by rename, so ``RELEASE_DIR``
is either the old release or the new one, and a rerun on the same selection writes the same
bytes. An existing ``RELEASE_DIR`` is replaced only if it is empty or an lmsieve release.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import uuid
from importlib import metadata

import pyarrow as pa

from lmsieve.io.parquet import sha256_file
from lmsieve.release.checksums import write_checksums
from lmsieve.release.shards import schema_fields, write_shards
from lmsieve.release.source import MANIFEST, SelectionDir, read_selection
from lmsieve.release.stats import TOKENS_DEFINITION, license_column, release_counts, text_counts
from lmsieve.schemas.errors import ConfigError, InputError

KIND = "lmsieve-release"
RELEASE_VERSION = 1
LICENSES = "LICENSES.md"
JOB_SPEC = "job.toml"
#: Licence notes looked for next to the pool's input files when no ``license_file`` is given.
LICENSE_NAMES = ("LICENSES.md", "LICENSE.md", "LICENSE", "LICENSE.txt", "COPYING")
DEPENDENCIES = ("numpy", "pyarrow", "matplotlib", "fsspec", "apache-beam")


def versions() -> dict:
    from lmsieve import __version__

    out = {"lmsieve": __version__, "python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def find_license_file(sel: SelectionDir) -> str | None:
    """The first licence note beside a (local) pool input file, if any."""
    for f in sel.manifest.get("inputs", {}).get("pool", []):
        d = os.path.dirname(str(f.get("path", "")))
        for name in LICENSE_NAMES:
            p = os.path.join(d, name)
            if d and os.path.isfile(p):
                return p
    return None


def _inputs_with_checksums(inputs: dict) -> dict:
    """The selection's inputs; a pool file the selection did not hash (the Beam job does not) is
    hashed here when it is a readable local file (``sha256_by: release``)."""
    out = json.loads(json.dumps(inputs))
    for files in out.values():
        for f in files if isinstance(files, list) else []:
            p = str(f.get("path", ""))
            if f.get("sha256") is None and "://" not in p and os.path.isfile(p):
                f["sha256"], f["sha256_by"] = sha256_file(p), "release"
    return out


def _sorted(x):
    if isinstance(x, dict):
        return {k: _sorted(x[k]) for k in sorted(x)}
    if isinstance(x, list):
        return [_sorted(v) for v in x]
    return x


def build_manifest(sel: SelectionDir, *, name: str, shards: list[dict], files: list[str], root: str,
                   schema, counts: dict, licenses: dict, options: dict, job_spec: str | None) -> dict:
    src = {k: v for k, v in sel.manifest.items() if not k.startswith("_")}
    c = sel.counts
    pool = {"documents": c.get("input"), "invalid": c.get("invalid"), "quarantined": c.get("quarantined"),
            "ineligible": c.get("ineligible"), "contaminated": c.get("contaminated"),
            "characters": c.get("characters", {}).get("input")}
    selected = {"documents": c.get("selected"), "rejected": c.get("rejected"),
                "characters": c.get("characters", {}).get("selected")}
    per_domain = {"pool": c.get("per_domain", {}).get("input"), "selected": c.get("per_domain", {}).get("selected"),
                  "released": counts.get("per_domain")}
    keys = ("input", "invalid", "quarantined", "ineligible", "selected", "rejected")
    per_selector = {sel.method: {k: c.get(k) for k in keys}}
    m = {
        "kind": KIND, "release_version": RELEASE_VERSION, "name": name, "command": "release",
        "versions": versions(),
        "selection": {"path": sel.path, "command": src.get("command"), "manifest_sha256": sel.manifest_sha256,
                      "files": sel.files, "method": src.get("method"), "params": src.get("params"),
                      "seed": src.get("seed"), "selection": src.get("selection")},
        "selection_manifest": src,
        "inputs": _inputs_with_checksums(src.get("inputs", {})),
        "job_spec": job_spec,
        "licenses": licenses,
        "counts": {"pool": pool, "selected": selected, "released": counts, "per_domain": per_domain,
                   "per_selector": per_selector, "tokens_definition": TOKENS_DEFINITION},
        "schema": schema_fields(schema),
        "shards": shards,
        "files": [{"path": f, "bytes": os.path.getsize(os.path.join(root, f)),
                   "sha256": sha256_file(os.path.join(root, f))} for f in sorted(files)],
        "options": options,
    }
    return _sorted(m)


def check_counts(sel: SelectionDir, counts: dict, removed: dict | None = None) -> None:
    """The release holds exactly the selection: same documents (and per domain), less those
    ``removed`` by ``release --decontaminate`` (``{"removed": n, "removed_per_domain": {...}}``)."""
    c = sel.counts
    n_rm, rm_dom = (removed or {}).get("removed", 0), (removed or {}).get("removed_per_domain", {})
    if c.get("selected") is not None and counts["documents"] != c["selected"] - n_rm:
        raise InputError(f"{counts['documents']} documents to release, the selection counts {c['selected']}", sel.path)
    want = c.get("per_domain", {}).get("selected")
    want = None if want is None else {k: v - rm_dom.get(k, 0) for k, v in want.items() if v - rm_dom.get(k, 0)}
    if want is not None and counts.get("per_domain") is not None and counts["per_domain"] != dict(sorted(want.items())):
        raise InputError("documents per domain differ from the selection's manifest", sel.path)


def _check_out(out: str) -> None:
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise ConfigError(f"--out {out} is a file, not a directory")
        if os.listdir(out) and not _is_release(out):
            raise ConfigError(f"--out {out} exists and is not an lmsieve release; refusing to replace it")


def _publish(tmp: str, out: str) -> None:
    old = None
    if os.path.exists(out):
        _check_out(out)
        old = f"{tmp}-old"
        os.rename(out, old)
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _is_release(d: str) -> bool:
    try:
        with open(os.path.join(d, MANIFEST), encoding="utf-8") as f:
            return json.load(f).get("kind") == KIND
    except (OSError, ValueError):
        return False


def make_release(selection, out: str, *, name: str, max_rows_per_shard: int = 100_000,
                 target_shard_bytes: int = 256 << 20, licenses: list[str] | tuple = (),
                 license_file: str | None = None, job_spec: str | None = None, description: str = "",
                 decontaminate=None, decontaminate_mode: str = "remove", fmt: str = "parquet") -> dict:
    """Write a release of ``selection`` (a directory or a :class:`SelectionDir`) to ``out``;
    returns the release manifest. ``licenses``: licence identifiers for the card (SPDX, e.g.
    ``["bsd-3-clause", "psf-2.0"]``); ``license_file``: licence notes copied in as ``LICENSES.md``
    (default: one found beside the pool's input files); ``job_spec``: the job file to carry;
    ``decontaminate``: an index or evaluation files to check the selection against once more
    ("remove": contaminated documents are left out of the release; the card and manifest say so).
    ``fmt``: the shards' format, "parquet" (default), "jsonl" or "jsonl.gz"."""
    from lmsieve.release.card import write_card

    if not name or "\n" in name:
        raise ConfigError("--name must be a non-empty single line")
    if max_rows_per_shard < 1 or target_shard_bytes < 1:
        raise ConfigError("--max-rows-per-shard and --target-shard-bytes must be positive")
    from lmsieve.release.shards import FORMATS

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    sel = selection if isinstance(selection, SelectionDir) else read_selection(selection)
    out = os.path.abspath(os.fspath(out))
    if os.path.commonpath([out, os.path.abspath(sel.path)]) in (out, os.path.abspath(sel.path)):
        raise ConfigError(f"--out {out} must be outside the selection directory (and not contain it)")
    _check_out(out)
    license_file = license_file or find_license_file(sel)
    for p in (license_file, job_spec):
        if p is not None and not os.path.isfile(p):
            raise InputError("no such file", p)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(out)}.tmp-{uuid.uuid4().hex[:12]}")
    os.makedirs(tmp)
    try:
        docs, dec = _decontaminate(sel, decontaminate, decontaminate_mode)
        counts = release_counts(docs)
        check_counts(sel, counts, dec)
        shards = write_shards(docs, tmp, max_rows_per_shard, target_shard_bytes, text_counts, fmt)
        extra = []
        lic = {"declared": sorted(set(licenses)), "column": license_column(docs.schema), "file": None, "source": None}
        if license_file:
            shutil.copyfile(license_file, os.path.join(tmp, LICENSES))
            lic.update(file=LICENSES, source=os.path.basename(license_file))
            extra.append(LICENSES)
        if job_spec:
            shutil.copyfile(job_spec, os.path.join(tmp, JOB_SPEC))
            extra.append(JOB_SPEC)
        options = {"max_rows_per_shard": max_rows_per_shard, "target_shard_bytes": target_shard_bytes}
        if fmt != "parquet":  # absent for Parquet: earlier releases' manifests stay byte-identical
            options["format"] = fmt
        counts_card = {**counts, "decontamination": {"selection": sel.counts.get("decontamination"), "release": dec}}
        extra += write_card(tmp, sel, name=name, shards=shards, counts=counts_card, licenses=lic,
                            description=description)
        manifest = build_manifest(sel, name=name, shards=shards, files=extra, root=tmp, schema=docs.schema,
                                  counts=counts, licenses=lic, options=options,
                                  job_spec=JOB_SPEC if job_spec else None)
        if dec is not None or sel.counts.get("decontamination"):
            manifest["counts"]["decontamination"] = _sorted(counts_card["decontamination"])
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        write_checksums(tmp)
        _publish(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def _decontaminate(sel: SelectionDir, spec, mode: str):
    """(documents to release, the release-time decontamination entry or None)."""
    docs = sel.documents
    if spec is None:
        return docs, None
    from collections import Counter

    from lmsieve.features.decontam.apply import Decontaminator

    d = spec if isinstance(spec, Decontaminator) else Decontaminator.from_spec(spec, mode)
    f, _ = d.screen(docs)
    entry = d.account({"rejected": 0}, f, docs.column("id").to_pylist())["decontamination"]
    entry["removed"], entry["removed_per_domain"] = 0, {}
    if d.mode == "remove" and f.flagged.any():
        if "domain" in docs.column_names:
            dom = docs.filter(pa.array(f.flagged)).column("domain").to_pylist()
            entry["removed_per_domain"] = dict(sorted(Counter("<none>" if x is None else x for x in dom).items()))
        entry["removed"] = int(f.flagged.sum())
        docs = docs.filter(pa.array(~f.flagged))
    return docs, entry


__all__ = ["make_release", "versions"]
