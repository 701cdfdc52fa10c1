"""A selection run's output directory: shards, scores, quarantine, contamination record, manifest last."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lmsieve.io.output import RunOutput, write_shards
from lmsieve.io.parquet import write_table
from lmsieve.schemas.manifest import domain_counts, scores_table, selection_counts, selection_manifest
from lmsieve.schemas.quarantine import QUARANTINE_FILE, Quarantine
from lmsieve.selection.sample import Selection
from lmsieve.selectors.base import Selector

SCORES_FILE = "scores.parquet"
#: The manifest's ``runner`` of an in-process run (the Beam job writes its own settings there).
RUNNER = {"engine": "in-process"}


def run_counts(res: Selection, q: Quarantine) -> dict:
    """The manifest's counts of an in-process selection (the same builder as the Beam job's)."""
    pool = res.table
    mask = np.zeros(pool.num_rows, dtype=bool)
    mask[res.indices] = True
    chars = pc.utf8_length(pool.column("text")).to_numpy(zero_copy_only=False).astype(np.int64)
    dom = pool.column("domain").to_pylist() if "domain" in pool.column_names else [None] * pool.num_rows
    return selection_counts(n_input=q.n_read, n_selected=int(mask.sum()), quarantined=q.counts(),
                            ineligible=int((~res.eligible).sum()), chars_input=int(chars.sum()),
                            chars_selected=int(chars[mask].sum()), domains_input=domain_counts(dom),
                            domains_selected=domain_counts(dom, np.flatnonzero(mask)))


def write_selection(out_dir: str, sel: Selector, res: Selection, q: Quarantine, policy: str, pool_inputs: list[dict],
                    target_inputs: list[dict], decon=None, dflags=None, drecord=None,
                    temperature: float | None = None) -> tuple[dict, str]:
    """Write the run's files into ``out_dir`` (by rename, manifest last); (manifest, its path)."""
    pool = res.table
    mask = np.zeros(pool.num_rows, dtype=bool)
    mask[res.indices] = True
    with RunOutput(out_dir) as out:
        outputs = write_shards(out, res.selected, "selected")
        # With separate DSIR targets, scores.parquet holds the best score over targets.
        flat = res.scores if res.scores.ndim == 1 else res.scores.max(axis=1)
        sc = scores_table(pool.column("id"), flat, res.eligible).append_column("selected", pa.array(mask))
        write_table(sc, out.path(SCORES_FILE))
        outputs.append({"path": SCORES_FILE, "rows": sc.num_rows})
        if policy == "quarantine":
            qt = q.table()
            write_table(qt, out.path(QUARANTINE_FILE))
            outputs.append({"path": QUARANTINE_FILE, "rows": qt.num_rows})
        counts = run_counts(res, q)
        if decon is not None:
            from lmsieve.features.decontam.apply import CONTAMINATED_FILE

            write_table(drecord, out.path(CONTAMINATED_FILE))
            outputs.append({"path": CONTAMINATED_FILE, "rows": drecord.num_rows})
            decon.account(counts, dflags, res.selected.column("id").to_pylist())
        manifest = selection_manifest(
            method=sel.name, params=sel.get_params(), seed=res.seed, budget=res.budget.to_dict(),
            ranking=res.ranking, temperature=sel.default_temperature if temperature is None else temperature,
            inputs={"pool": pool_inputs, "target": target_inputs}, counts=counts, outputs=outputs, runner=RUNNER)
        path = out.commit(manifest)
    return manifest, path


__all__ = ["RUNNER", "SCORES_FILE", "run_counts", "write_selection"]
