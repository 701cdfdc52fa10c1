"""One selection run, end to end: the library's, which ``lmsieve select`` and ``lmsieve.select(out=)`` call.

Inputs are read and validated (with their sha256 when an output directory is written: they are
part of the run key and the manifest), the fit → score → sample steps run with their resume
records (:mod:`lmsieve.selection.steps`, ``OUT/.lmsieve-runs/``), and the outputs appear by
rename with ``manifest.json`` last (:mod:`lmsieve.io.output`):

* ``selected-NNNNN-of-NNNNN.parquet``: the selected documents, all input columns, input order;
* ``scores.parquet``: ``id, score, eligible, selected`` for every valid document;
* ``quarantine.parquet`` (``on_invalid="quarantine"``) and ``contaminated.parquet`` (decontamination);
* ``manifest.json`` (:func:`lmsieve.schemas.manifest.selection_manifest`, runner ``in-process``);
* ``lmsieve.log``: the run's progress lines, timings and warnings (local outputs).

Without an output directory the same steps run without records or files. The same inputs, seed
and parameters give byte-identical directories whichever face called the run.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from lmsieve.io.inputs import load_docs
from lmsieve.io.paths import check_out, is_remote
from lmsieve.sampling.select import Budget
from lmsieve.schemas.document import ID, TEXT
from lmsieve.schemas.errors import ConfigError
from lmsieve.schemas.quarantine import DEFAULT_MAX_DOC_BYTES, Quarantine
from lmsieve.selection.inputs import drop_nonfinite, load_pool, report_quarantine, table_digest
from lmsieve.selection.outputs import write_selection
from lmsieve.selection.sample import Selection
from lmsieve.selection.steps import fit_score_sample, open_run, run_config
from lmsieve.selectors.base import Selector

@dataclass
class SelectResult:
    """What a run returns: the selection, the fitted selector, and (with ``out``) its manifest."""

    selection: Selection
    selector: Selector
    manifest: dict | None = None
    manifest_path: str | None = None

    @property
    def selected(self) -> pa.Table:
        return self.selection.selected


def _input_entries(files, table: pa.Table, name: str, digest: bool) -> list[dict]:
    """Provenance of documents: their files, or (``digest``) the content digest of a table passed as one."""
    if files:
        return [f.to_dict() for f in files]
    return [{"path": f"<{name} table>", "rows": table.num_rows, "bytes": table.nbytes,
             "sha256": table_digest(table) if digest else None}]


def _load_target(target, text_column, id_column, checksums: bool):
    """(target table or {name: table}, its input entries)."""
    def one(t, name):
        tbl, files = load_docs(t, name=name, checksums=checksums, text_column=text_column, id_column=id_column)
        if tbl.num_rows == 0:
            where = ", ".join(f.path for f in files) or f"<{name}>"
            raise ConfigError(f"{where}: the target set is empty (0 documents)")
        return tbl, _input_entries(files, tbl, name, checksums)

    if isinstance(target, dict):
        loaded = {k: one(v, f"target {k}") for k, v in target.items()}
        return {k: t for k, (t, _) in loaded.items()}, [{**e, "target": k} for k, (_, es) in loaded.items() for e in es]
    return one(target, "target")


@contextmanager
def _run_log(out: str | None):
    """``OUT/lmsieve.log`` for the run's duration (local outputs only)."""
    if out is None or is_remote(out):
        yield
        return
    from lmsieve import progress

    h = progress.add_log_file(os.path.join(str(out).removeprefix("file://"), "lmsieve.log"))
    try:
        yield
    finally:
        if h is not None:
            logging.getLogger().removeHandler(h)
            h.close()


def select_run(docs, method: str, target, budget: Budget, *, params: dict | None = None, seed: int = 0,
               ranking: str | None = None, temperature: float | None = None, out: str | None = None,
               resume: bool = True, save_fitted: str | None = None, pool_sample=None, progress: bool = False,
               on_invalid="error", max_doc_bytes: int | None = DEFAULT_MAX_DOC_BYTES, decontaminate=None,
               text_column=None, id_column=None, target_text_column=None, target_id_column=None) -> SelectResult:
    """Select ``budget`` of ``docs`` against ``target`` with ``method``; with ``out``, write the run's
    directory (module docstring) and resume from its records (``resume=False``: recompute).

    ``decontaminate``: a :class:`lmsieve.features.decontam.apply.Decontaminator` (or None).
    ``on_invalid``: "error", "quarantine" or a :class:`Quarantine` to fill."""
    params = dict(params or {})
    if out is not None:
        check_out(out, "dir", flag="out", example="selected-*.parquet, scores.parquet, manifest.json")
    given_q = isinstance(on_invalid, Quarantine)
    policy = on_invalid.on_invalid if given_q else on_invalid
    pool, pool_files, q = load_pool(docs, method, params, on_invalid, max_doc_bytes, checksums=out is not None,
                                    text_column=text_column, id_column=id_column)
    tcols = (target_text_column or (text_column and [text_column, TEXT]),
             target_id_column or (id_column and [id_column, ID]))
    target, target_inputs = _load_target(target, *tcols, checksums=out is not None)
    sample_key = None
    if pool_sample is not None:
        pool_sample, _ = load_docs(pool_sample, name="pool sample")
        sample_key = table_digest(pool_sample) if out is not None else None
    dflags = drecord = None
    if decontaminate is not None:  # flags now; in remove mode the flagged leave between scoring and sampling
        dflags, drecord = decontaminate.screen(pool, progress=progress)
    pool_inputs = _input_entries(pool_files, pool, "pool", out is not None)
    extra = {"on_invalid": policy, "max_doc_bytes": max_doc_bytes,
             **({"decontaminate": decontaminate.params()} if decontaminate is not None else {}),
             **({"pool_sample": sample_key} if sample_key else {})}
    config = {} if out is None else run_config(  # without out nothing is recorded (no key needed)
        method, params, seed=seed, budget=budget, ranking=ranking, temperature=temperature,
        pool=[[e["sha256"], e["rows"]] for e in pool_inputs], target=[[e["sha256"], e["rows"]] for e in target_inputs],
        extra=extra)
    run_dir = open_run(out, config, resume=resume)

    def screen(p, s, e):
        p, s, e = drop_nonfinite(q, p, s, e)
        return (p, s, e) if decontaminate is None else decontaminate.drop(p, s, e, drecord)

    with _run_log(out):  # inputs and parameters are valid: from here on OUT holds the run's log
        sel, res = fit_score_sample(run_dir, method, params, target, pool, budget, seed=seed, ranking=ranking,
                                    temperature=temperature, progress=progress, screen=screen,
                                    pool_sample=pool_sample)
        if save_fitted:
            sel.save(save_fitted)
        if out is None:
            if not given_q:
                report_quarantine(q, False)
            return SelectResult(res, sel)
        manifest, path = write_selection(out, sel, res, q, policy, pool_inputs, target_inputs, decontaminate,
                                         dflags, drecord, temperature)
    run_dir.prune_others()
    return SelectResult(res, sel, manifest, path)


__all__ = ["SelectResult", "select_run"]
