"""CLI: score, select, demo; bad input gives one clear line naming file and row, and no output."""
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import pool_slice, target_set

from lmsieve.cli.main import main


@pytest.fixture
def files(tmp_path):
    pool = pool_slice(900)
    shards = []
    for i in range(3):
        p = tmp_path / f"pool-{i}.parquet"
        pq.write_table(pool.slice(i * 300, 300), p)
        shards.append(p)
    t = tmp_path / "target.parquet"
    pq.write_table(target_set("heldout_code_python").slice(0, 60), t)
    return tmp_path, shards, t, pool


def run(*args):
    return main([str(a) for a in args])


def test_select_writes_documents_scores_and_manifest(files, capsys):
    d, shards, target, pool = files
    out = d / "sel"
    rc = run("select", "--method", "dsir", "--target", target, "--pool", str(d / "pool-*.parquet"),
             "--keep-fraction", 0.1, "--seed", 3, "--out", out, "--no-progress")
    assert rc == 0
    m = json.loads((out / "manifest.json").read_text())
    sel = pq.read_table(out / "selected-00000-of-00001.parquet")
    assert sel.num_rows == m["counts"]["selected"] == 90
    assert sel.column_names == pool.column_names  # all input columns kept
    c = m["counts"]
    assert c["input"] == 900 and c["selected"] + c["rejected"] + c["invalid"] == c["input"]
    assert sum(c["per_domain"]["selected"].values()) == 90
    assert [f["rows"] for f in m["inputs"]["pool"]] == [300, 300, 300]
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in m["inputs"]["pool"])
    assert m["method"] == "dsir" and m["seed"] == 3 and m["selection"]["ranking"] == "gumbel"
    scores = pq.read_table(out / "scores.parquet")
    assert scores.num_rows == 900 and sum(scores.column("selected").to_pylist()) == 90
    assert not [p for p in os.listdir(out) if p.startswith(".tmp")]


def test_same_selection_from_one_file_and_from_shards(files):
    d, shards, target, pool = files
    one = d / "one.parquet"
    pq.write_table(pool, one)
    shuffled = d / "shuffled.parquet"
    pq.write_table(pool.take(np.random.default_rng(0).permutation(900)), shuffled)
    ids = []
    for name, src in [("a", [str(s) for s in shards]), ("b", [str(one)]), ("c", [str(shuffled)])]:
        assert run("select", "--method", "dsir", "--target", target, "--pool", *src, "--keep", 50,
                   "--seed", 9, "--out", d / name, "--no-progress") == 0
        ids.append(sorted(pq.read_table(d / name / "selected-00000-of-00001.parquet").column("id").to_pylist()))
    assert ids[0] == ids[1] == ids[2]


def test_score_command(files, capsys):
    d, shards, target, pool = files
    assert run("score", "--method", "dsir", "--target", target, "--pool", shards[0], "--out", d / "s.parquet",
               "--no-progress") == 0
    t = pq.read_table(d / "s.parquet")
    assert t.column_names == ["id", "score", "eligible"] and t.num_rows == 300
    assert t.column("id").to_pylist() == pool.slice(0, 300).column("id").to_pylist()


def test_keep_chars_fraction(files):
    d, shards, target, pool = files
    assert run("select", "--method", "dsir", "--target", target, "--pool", *shards, "--keep-chars-fraction", 0.2,
               "--ranking", "topk", "--out", d / "c", "--no-progress") == 0
    m = json.loads((d / "c" / "manifest.json").read_text())["counts"]["characters"]
    assert 0.2 <= m["selected"] / m["input"] < 0.25


def _bad_select(d, pool_path, target):
    out = d / "bad-out"
    rc = run("select", "--method", "dsir", "--target", target, "--pool", pool_path, "--keep", 5, "--out", out,
             "--no-progress")
    return rc, out


def _assert_nothing_complete(out):
    assert not (out / "manifest.json").exists()
    assert not list(out.glob("selected-*")) if out.exists() else True


def test_truncated_parquet(files, capsys):
    d, shards, target, _ = files
    bad = d / "truncated.parquet"
    bad.write_bytes(shards[0].read_bytes()[:-1000])
    rc, out = _bad_select(d, bad, target)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and str(bad) in err and "not a readable Parquet file" in err and err.count("\n") == 0
    _assert_nothing_complete(out)


def test_missing_text_column(files, capsys):
    d, shards, target, pool = files
    bad = d / "notext.parquet"
    pq.write_table(pool.slice(0, 10).drop(["text"]), bad)
    rc, out = _bad_select(d, bad, target)
    err = capsys.readouterr().err
    assert rc == 2 and str(bad) in err and "missing required column 'text'" in err
    _assert_nothing_complete(out)


def test_null_text_names_row(files, capsys):
    d, shards, target, pool = files
    t = pool.slice(0, 10)
    texts = t.column("text").to_pylist()
    texts[7] = None
    bad = d / "null.parquet"
    pq.write_table(t.set_column(t.column_names.index("text"), "text", pa.array(texts, pa.string())), bad)
    rc, out = _bad_select(d, bad, target)
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}, row 7: null 'text'" in err
    _assert_nothing_complete(out)


def test_duplicate_ids_within_and_across_files(files, capsys):
    d, shards, target, pool = files
    t = pool.slice(0, 10)
    ids = t.column("id").to_pylist()
    ids[6] = ids[2]
    bad = d / "dup.parquet"
    pq.write_table(t.set_column(0, "id", pa.array(ids)), bad)
    rc, out = _bad_select(d, bad, target)
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}, row 6: duplicate id" in err and "first seen at row 2" in err
    _assert_nothing_complete(out)
    rc = run("select", "--method", "dsir", "--target", target, "--pool", shards[0], shards[0], "--keep", 5,
             "--out", d / "x", "--no-progress")
    assert rc == 2 and "duplicate id" in capsys.readouterr().err


def test_failed_rerun_does_not_leave_old_manifest(files, capsys):
    d, shards, target, pool = files
    out = d / "rerun"
    assert run("select", "--method", "dsir", "--target", target, "--pool", shards[0], "--keep", 5, "--out", out,
               "--no-progress") == 0
    assert (out / "manifest.json").exists()
    bad = d / "notext.parquet"
    pq.write_table(pool.slice(0, 10).drop(["text"]), bad)
    assert run("select", "--method", "dsir", "--target", target, "--pool", bad, "--keep", 5, "--out", out,
               "--no-progress") == 2


def test_empty_target_and_unknown_param(files, capsys):
    d, shards, target, pool = files
    empty = d / "empty.parquet"
    pq.write_table(pool.slice(0, 0), empty)
    rc, _ = _bad_select(d, shards[0], empty)
    assert rc == 2 and "target set is empty" in capsys.readouterr().err
    rc = run("score", "--method", "dsir", "--target", target, "--pool", shards[0], "--out", d / "s.parquet",
             "--param", "num_tokens_to_fit=-3")
    assert rc == 2 and "num_tokens_to_fit" in capsys.readouterr().err


def test_demo_runs_on_bundled_sample(tmp_path, capsys):
    assert run("demo", "--out", tmp_path / "demo") == 0
    out = capsys.readouterr().out
    assert "code_python" in out and "output:" in out
    m = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    after = m["counts"]["per_domain"]["selected"]
    assert after.get("code_python", 0) / m["counts"]["selected"] > 0.5  # the target's domain dominates


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("score", "select", "demo"):
        assert cmd in out
