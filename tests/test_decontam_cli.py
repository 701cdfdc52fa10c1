"""Decontamination in the CLI (issue 20): build/check, and --decontaminate on select (remove/report)."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import pool_slice, target_set

from lmsieve.cli.main import main


def run(*args):
    return main([str(a) for a in args])


@pytest.fixture
def planted(tmp_path):
    """600 pool documents; 12 of them hold a HumanEval prompt mid-document (upper-cased, lines rejoined)."""
    pool = pool_slice(600)
    he = target_set("humaneval")
    texts = pool.column("text").to_pylist()
    planted_ids = []
    for j, d in enumerate(range(5, 600, 50)):
        item = he.column("prompt")[j].as_py().upper().replace("\n", " ")
        cut = len(texts[d]) // 2
        texts[d] = texts[d][:cut] + "\n" + item + "\n" + texts[d][cut:]
        planted_ids.append(pool.column("id")[d].as_py())
    pool = pool.set_column(pool.column_names.index("text"), "text", pa.array(texts))
    pq.write_table(pool.slice(0, 300), tmp_path / "pool-0.parquet")
    pq.write_table(pool.slice(300), tmp_path / "pool-1.parquet")
    pq.write_table(he, tmp_path / "humaneval.parquet")
    return tmp_path, planted_ids


def _select(d, out, *extra):
    return run("select", "--method", "dsir", "--target", d / "humaneval.parquet", "--pool", d / "pool-0.parquet",
               d / "pool-1.parquet", "--keep", 60, "--ranking", "topk", "--out", out, "--no-progress", *extra)


def test_remove_mode_never_selects_contaminated_and_counts_add_up(planted):
    d, planted_ids = planted
    assert _select(d, d / "plain") == 0
    plain = set(pq.read_table(d / "plain" / "selected-00000-of-00001.parquet").column("id").to_pylist())
    assert len(plain & set(planted_ids)) >= 3  # the targeted selector loves the planted documents
    assert run("decontaminate", "build", "--eval", d / "humaneval.parquet", "--out", d / "idx") == 0
    assert _select(d, d / "clean", "--decontaminate", d / "idx") == 0
    clean = set(pq.read_table(d / "clean" / "selected-00000-of-00001.parquet").column("id").to_pylist())
    assert len(clean) == 60 and not clean & set(planted_ids)
    c = json.loads((d / "clean" / "manifest.json").read_text())["counts"]
    assert c["contaminated"] >= len(planted_ids) and c["contaminated_by_set"]["humaneval"] == c["contaminated"]
    assert c["input"] == c["selected"] + c["rejected"] + c["quarantined"] + c["contaminated"] == 600
    rec = pq.read_table(d / "clean" / "contaminated.parquet")
    assert set(planted_ids) <= set(rec.column("id").to_pylist())
    assert set(rec.column("reason").to_pylist()) == {"contaminated"}
    # the same flags from evaluation files given directly
    assert _select(d, d / "files", "--decontaminate", d / "humaneval.parquet") == 0
    assert pq.read_table(d / "files" / "contaminated.parquet").equals(rec)


def test_report_mode_counts_selected_contamination(planted):
    d, planted_ids = planted
    assert _select(d, d / "rep", "--decontaminate", d / "humaneval.parquet", "--decontaminate-mode", "report") == 0
    m = json.loads((d / "rep" / "manifest.json").read_text())
    sel = set(pq.read_table(d / "rep" / "selected-00000-of-00001.parquet").column("id").to_pylist())
    dc = m["counts"]["decontamination"]
    flagged = set(pq.read_table(d / "rep" / "contaminated.parquet").column("id").to_pylist())
    assert dc["mode"] == "report" and dc["selected"] == len(sel & flagged) >= 3
    assert m["counts"]["selected"] + m["counts"]["rejected"] + m["counts"]["quarantined"] == 600


def test_check_lists_offenders_with_span(planted, capsys):
    d, planted_ids = planted
    assert _select(d, d / "plain") == 0
    capsys.readouterr()
    assert run("decontaminate", "check", d / "plain", "--eval", d / "humaneval.parquet", "--json", d / "a.json") == 0
    rep = json.loads((d / "a.json").read_text())
    assert rep["contaminated"] >= 3 and rep["offenders"]
    top = rep["offenders"][0]
    assert top["id"] in planted_ids and top["item"].startswith("humaneval/") and len(top["span"].split()) >= 13
    assert "contain evaluation items" in capsys.readouterr().out


def test_bad_eval_file_is_one_line_exit_2(tmp_path, capsys):
    pq.write_table(pa.table({"id": ["a"], "question": ["x"]}), tmp_path / "e.parquet")
    assert run("decontaminate", "build", "--eval", tmp_path / "e.parquet", "--out", tmp_path / "i") == 2
    err = capsys.readouterr().err
    assert "e.parquet" in err and "Traceback" not in err


def test_api_select_score_and_contamination_agree_with_cli(planted):
    import numpy as np

    import lmsieve
    from lmsieve.api import contamination, decontamination_index

    d, planted_ids = planted
    pool = pa.concat_tables([pq.read_table(d / "pool-0.parquet"), pq.read_table(d / "pool-1.parquet")])
    idx = decontamination_index([str(d / "humaneval.parquet")])
    c = contamination(pool, idx)
    flagged = set(np.asarray(c.column("id").to_pylist(), dtype=object)[c.column("contaminated").to_numpy(
        zero_copy_only=False)].tolist())
    assert set(planted_ids) <= flagged
    assert all(s == ["humaneval"] for s, f in zip(c.column("eval_sets").to_pylist(),
                                                 c.column("contaminated").to_pylist()) if f)
    tgt = pq.read_table(d / "humaneval.parquet")
    picked = lmsieve.select(pool, "dsir", tgt, keep=60, ranking="topk", decontaminate=idx)
    assert picked.num_rows == 60 and not set(picked.column("id").to_pylist()) & flagged
    assert _select(d, d / "cli", "--decontaminate", d / "humaneval.parquet") == 0
    cli = pq.read_table(d / "cli" / "selected-00000-of-00001.parquet").column("id").to_pylist()
    assert sorted(cli) == sorted(picked.column("id").to_pylist())
    s = lmsieve.score(pool, "dsir", tgt, decontaminate=idx)
    assert np.isnan(s[c.column("contaminated").to_numpy(zero_copy_only=False)]).all()
    assert run("score", "--method", "dsir", "--target", d / "humaneval.parquet", "--pool", d / "pool-0.parquet",
               d / "pool-1.parquet", "--out", d / "s.parquet", "--no-progress",
               "--decontaminate", d / "humaneval.parquet") == 0
    t = pq.read_table(d / "s.parquet")
    cont = set(np.asarray(t.column("id").to_pylist(), dtype=object)[t.column("contaminated").to_numpy(
        zero_copy_only=False)].tolist())
    assert cont == flagged and not any(e for e, x in zip(t.column("eligible").to_pylist(),
                                                         t.column("contaminated").to_pylist()) if x)
