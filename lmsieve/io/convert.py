"""Any input lmsieve reads -> Parquet shards with ``id``/``text`` and a manifest (``lmsieve convert``).

The same reader as every other command (:mod:`lmsieve.io.formats`, column mapping and generated ids
in :mod:`lmsieve.io.columns`), so a converted corpus has exactly the ids ``lmsieve select`` gives the
original files. Files appear by rename, ``manifest.json`` last (:mod:`lmsieve.io.output`).
"""
from __future__ import annotations

from lmsieve.io.inputs import load_docs
from lmsieve.io.output import RunOutput, write_shards
from lmsieve.io.parquet import write_table
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, QUARANTINE_FILE, Quarantine


def convert(inputs, out_dir: str, *, on_invalid: str = "error", max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES,
            text_column: str | None = None, id_column: str | None = None) -> tuple[dict, str]:
    """Write ``OUT/part-NNNNN-of-NNNNN.parquet`` (+ ``quarantine.parquet``) and the manifest; (manifest, its path)."""
    from lmsieve import __version__

    q = Quarantine(on_invalid, max_doc_bytes)
    table, files = load_docs(inputs, name="input", checksums=True, quarantine=q, text_column=text_column,
                             id_column=id_column)
    with RunOutput(out_dir) as out:
        outputs = write_shards(out, table, "part")
        if on_invalid == "quarantine":
            qt = q.table()
            write_table(qt, out.path(QUARANTINE_FILE))
            outputs.append({"path": QUARANTINE_FILE, "rows": qt.num_rows})
        manifest = {"manifest_version": 1, "lmsieve_version": __version__, "command": "convert",
                    "params": {"text_column": text_column, "id_column": id_column},
                    "inputs": {"input": [f.to_dict() for f in files]},
                    "counts": {"input": q.n_read, "written": table.num_rows, "quarantined": q.n,
                               "quarantined_by_reason": q.counts()},
                    "outputs": outputs}
        path = out.commit(manifest)
    return manifest, path


__all__ = ["convert"]
