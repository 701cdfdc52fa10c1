"""Prefilter never rewrites text unasked (issue 15): with the defaults, kept documents' text is
byte-identical to the input; with allow_text_edits the edits are counted and the original kept.

Runs on the bundled sample (no shared data)."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("datatrove")  # a pinned dependency; present in every supported install

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import C4QualityFilter  # noqa: E402

from lmsieve.integrations.datatrove import run_prefilter  # noqa: E402
from lmsieve.integrations.datatrove.prefilter import ORIGINAL_TEXT  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "lmsieve" / "data" / "sample"


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    d = tmp_path_factory.mktemp("pf")
    t = pq.read_table(SAMPLE / "pool.parquet").slice(0, 250)
    pq.write_table(t, d / "pool.parquet")
    return d / "pool.parquet", t


def _read(out: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(out.glob("prefiltered-*.parquet")))


def _c4_direct(table: pa.Table) -> tuple[set, dict]:
    """What datatrove's own C4 filter keeps, and the text it would leave."""
    f = C4QualityFilter()
    keep, edited = set(), {}
    for r in table.to_pylist():
        if not r["text"]:
            continue
        doc = Document(text=r["text"], id=r["id"])
        ok = f.filter(doc)
        if ok is True or (isinstance(ok, tuple) and ok[0]):
            keep.add(r["id"])
            if doc.text != r["text"]:
                edited[r["id"]] = doc.text
    return keep, edited


def test_default_keeps_text_byte_identical_and_allow_text_edits_counts_them(pool, tmp_path):
    path, table = pool
    want_keep, want_edit = _c4_direct(table)
    assert want_edit, "the sample should contain documents the C4 filter edits"
    orig = dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))

    rep = run_prefilter(str(path), tmp_path / "default", filters=["c4"])
    got = _read(tmp_path / "default")
    assert got.column_names == table.column_names  # exactly the input's columns
    assert set(got.column("id").to_pylist()) == want_keep  # datatrove's own decisions
    for i, text in zip(got.column("id").to_pylist(), got.column("text").to_pylist()):
        assert text.encode("utf-8") == orig[i].encode("utf-8")  # byte-identical
    assert rep.text_edits_allowed is False and rep.text_edits_undone == {"c4": len(want_edit)}
    assert rep.text_edited == {}

    rep = run_prefilter(str(path), tmp_path / "edits", filters=["c4"], allow_text_edits=True)
    got = _read(tmp_path / "edits")
    assert got.column_names == table.column_names + [ORIGINAL_TEXT]
    assert set(got.column("id").to_pylist()) == want_keep  # the same decisions
    rows = {r["id"]: r for r in got.to_pylist()}
    for i, r in rows.items():
        if i in want_edit:
            assert r["text"] == want_edit[i] and r[ORIGINAL_TEXT] == orig[i]
        else:
            assert r["text"] == orig[i] and r[ORIGINAL_TEXT] is None
    assert rep.text_edited == {"c4": len(want_edit)}
    assert rep.text_chars_removed == {"c4": sum(len(orig[i]) - len(t) for i, t in want_edit.items())}
    import json

    manifest = json.loads((tmp_path / "edits" / "manifest.json").read_text())
    assert manifest["text_edited"] == {"c4": len(want_edit)} and manifest["text_edits_allowed"] is True
