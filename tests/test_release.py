"""Releases (issue #9): `lmsieve release` writes shards, card, manifest and checksums that
`lmsieve verify` accepts, and verify fails loudly on a flipped byte, a deleted row or an extra file.

Expected values come from outside the release code: the bundled sample read with pyarrow, Python
``re`` for tokens, ``datasets`` for loading, and brute-force checks of the shard plan.
"""
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmsieve.cli.main import main
from lmsieve.release import make_release, verify_release
from lmsieve.release.shards import plan_shards, row_nbytes
from lmsieve.schemas.errors import InputError

SAMPLE = Path(__file__).resolve().parents[1] / "lmsieve" / "data" / "sample"
POOL, TARGET = SAMPLE / "pool.parquet", SAMPLE / "target_code_python.parquet"
MAX_ROWS = 50


def run(*args):
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("release")
    assert run("select", "--method", "dsir", "--target", TARGET, "--pool", POOL, "--keep-fraction", 0.1,
               "--seed", 0, "--out", d / "sel", "--no-progress") == 0
    assert run("release", "--selection", d / "sel", "--out", d / "rel", "--name", "sample python",
               "--max-rows-per-shard", MAX_ROWS) == 0
    return d, d / "sel", d / "rel"


def _copy(rel: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(rel, dst)
    return dst


def _shards(rel: Path) -> list[Path]:
    return sorted((rel / "data").glob("*.parquet"))


def test_fresh_release_verifies_and_counts_add_up(made, capsys):
    d, sel, rel = made
    assert verify_release(rel) == []
    assert run("verify", rel) == 0 and "OK" in capsys.readouterr().out
    m = json.loads((rel / "manifest.json").read_text())
    scores = pq.read_table(sel / "scores.parquet")
    chosen = set(scores.filter(scores.column("selected")).column("id").to_pylist())
    pool = pq.read_table(POOL)
    expected = pool.filter(pa.array([i in chosen for i in pool.column("id").to_pylist()]))  # input order
    shards = [pq.read_table(p) for p in _shards(rel)]
    got = pa.concat_tables(shards)
    assert got.column("id").to_pylist() == expected.column("id").to_pylist()
    assert got.column_names == pool.column_names and all(s.schema.equals(shards[0].schema) for s in shards)
    assert [s.num_rows for s in shards] == [41, 40, 40]  # 121 rows, max 50 per shard, near-equal bytes
    texts = expected.column("text").to_pylist()
    c = m["counts"]
    assert c["released"]["documents"] == 121 == sum(s["rows"] for s in m["shards"])
    assert c["released"]["characters"] == sum(len(t) for t in texts)
    assert c["released"]["utf8_bytes"] == sum(len(t.encode()) for t in texts)
    assert c["released"]["tokens"] == sum(len(re.findall(r"[^\t\n\v\f\r ]+", t)) for t in texts)
    doms = expected.column("domain").to_pylist()
    assert c["released"]["per_domain"] == {k: doms.count(k) for k in sorted(set(doms))}
    pool_doms = pool.column("domain").to_pylist()
    assert c["per_domain"]["pool"] == {k: pool_doms.count(k) for k in sorted(set(pool_doms))}
    assert c["pool"]["documents"] == 1218
    assert c["selected"]["documents"] + c["selected"]["rejected"] + c["pool"]["invalid"] == 1218
    assert c["per_selector"]["dsir"]["selected"] == 121
    assert m["inputs"]["pool"][0]["sha256"] == hashlib.sha256(POOL.read_bytes()).hexdigest()
    assert m["selection"]["seed"] == 0 and m["selection"]["method"] == "dsir"
    assert m["versions"]["pyarrow"] == pa.__version__
    listed = sorted(line.split("  ", 1)[1] for line in (rel / "checksums.sha256").read_text().splitlines())
    on_disk = sorted(str(p.relative_to(rel)) for p in rel.rglob("*") if p.is_file() and p.name != "checksums.sha256")
    assert listed == on_disk and "manifest.json" in listed and "README.md" in listed


def test_flipped_byte_fails_on_checksum(made, tmp_path, capsys):
    rel = _copy(made[2], tmp_path)
    shard = _shards(rel)[1]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    shard.write_bytes(bytes(raw))
    assert run("verify", rel) == 2
    err = capsys.readouterr().err
    name = f"data/{shard.name}"
    assert f"{name}: sha256: expected" in err and "FAILED" in err
    assert {(m.file, m.what) for m in verify_release(rel)} >= {(name, "sha256"), (name, "sha256 (manifest.json)")}


def test_deleted_row_with_checksums_updated_fails_on_counts(made, tmp_path, capsys):
    rel = _copy(made[2], tmp_path)
    shard = _shards(rel)[0]
    t = pq.read_table(shard)
    pq.write_table(t.slice(1), shard, compression="zstd")
    name = f"data/{shard.name}"
    digest = hashlib.sha256(shard.read_bytes()).hexdigest()
    lines = [f"{digest}  {name}" if line.endswith(f"  {name}") else line
             for line in (rel / "checksums.sha256").read_text().splitlines()]
    (rel / "checksums.sha256").write_text("\n".join(lines) + "\n")
    found = {m.what: m for m in verify_release(rel)}
    assert "sha256" not in found  # the checksum file agrees: only the counts can catch it
    assert (found["rows"].file, found["rows"].expected, found["rows"].found) == (name, t.num_rows, t.num_rows - 1)
    assert found["counts.released.documents (recounted from the shards)"].found == 120
    assert found["released documents = counts.selected.documents"].expected == 121
    assert run("verify", rel) == 2
    assert f"{name}: rows: expected {t.num_rows}, found {t.num_rows - 1}" in capsys.readouterr().err


@pytest.mark.parametrize("extra", ["data/train-00003-of-00003.parquet", "notes.txt", ".hidden"])
def test_extra_file_fails(made, tmp_path, extra, capsys):
    rel = _copy(made[2], tmp_path)
    src = _shards(rel)[0] if extra.endswith(".parquet") else None
    (rel / extra).write_bytes(src.read_bytes() if src else b"x")
    problems = verify_release(rel)
    assert [(m.file, m.what) for m in problems] == [(extra, "file not in checksums.sha256")]
    assert run("verify", rel) == 2 and extra in capsys.readouterr().err


def test_missing_file_and_missing_checksums_fail(made, tmp_path):
    rel = _copy(made[2], tmp_path)
    (rel / "scores.png").unlink()
    assert ("scores.png", "file listed in checksums.sha256") in {(m.file, m.what) for m in verify_release(rel)}
    (rel / "checksums.sha256").unlink()
    assert ("checksums.sha256", "file") in {(m.file, m.what) for m in verify_release(rel)}


def test_loads_with_datasets_offline(made, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    rel = made[2]
    ds = datasets.load_dataset("parquet", data_files=str(rel / "data" / "train-*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    ref = pa.concat_tables([pq.read_table(p) for p in _shards(rel)])
    assert ds.num_rows == 121 == ref.num_rows
    assert ds.column_names == ["id", "text", "domain", "source"]
    assert ds["id"] == ref.column("id").to_pylist()
    by_card = datasets.load_dataset(str(rel), cache_dir=str(tmp_path / "hf2"))  # the card's `configs`
    assert by_card["train"]["id"] == ds["id"]
    assert verify_release(rel) == []  # loading wrote nothing into the release


def test_card_has_licences_composition_and_plots(made):
    rel = made[2]
    card = (rel / "README.md").read_text()
    assert card.startswith("---\n") and "path: data/train-*.parquet" in card and "license: other" in card
    for lic in ("PSF-2.0", "BSD-3-Clause", "CC0", "public domain"):  # from lmsieve/data/sample/LICENSES.md
        assert lic in card
    assert (rel / "LICENSES.md").read_bytes() == (SAMPLE / "LICENSES.md").read_bytes()
    pool_doms = pq.read_table(POOL, columns=["domain"]).column("domain").to_pylist()
    rel_doms = pa.concat_tables([pq.read_table(p, columns=["domain"]) for p in _shards(rel)])["domain"].to_pylist()
    for dom in ("code_python", "math"):  # one kept domain, one dropped entirely
        assert f"| {dom} | {pool_doms.count(dom):,} |" in card
        assert f"| {rel_doms.count(dom):,} |" in card.split(f"| {dom} |")[1].split("\n")[0]
    for png in ("composition.png", "scores.png"):
        assert (rel / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png})" in card
    scores = pq.read_table(made[1] / "scores.parquet")
    worst = min(s for s, k in zip(scores.column("score").to_pylist(), scores.column("selected").to_pylist()) if k)
    assert f"= {worst:.6g}." in card


def test_rerun_is_byte_identical_and_replaces_a_release(made, tmp_path):
    d, sel, rel = made
    again = tmp_path / "again"
    for _ in range(2):  # the second run replaces the first release in place
        make_release(sel, again, name="sample python", max_rows_per_shard=MAX_ROWS)
    files = sorted(p.relative_to(rel) for p in rel.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        assert (rel / f).read_bytes() == (again / f).read_bytes(), f
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_shard_size_options(made, tmp_path):
    sel = made[1]
    m = make_release(sel, tmp_path / "r", name="x", target_shard_bytes=200_000)
    assert len(m["shards"]) == 5  # ~825 kB of text / 200 kB -> 5 near-equal shards
    assert verify_release(tmp_path / "r") == []
    assert run("release", "--selection", sel, "--out", tmp_path / "one", "--name", "x",
               "--target-shard-bytes", "1GiB") == 0
    assert len(list((tmp_path / "one" / "data").glob("*.parquet"))) == 1


@pytest.mark.parametrize("n,max_rows,target", [(121, 50, 10**9), (1000, 7, 10**9), (1000, 10**6, 5000), (3, 1, 1),
                                                (1000, 30, 3000), (500, 100, 2000)])
def test_plan_shards_covers_rows_within_limits(n, max_rows, target):
    sizes = np.random.default_rng(n + max_rows).integers(1, 200, n)
    sizes[::97] *= 50  # a few large rows
    plan = plan_shards(sizes, max_rows, target)
    assert plan[0][0] == 0 and plan[-1][1] == n and all(a < b for a, b in plan)
    assert all(plan[i][1] == plan[i + 1][0] for i in range(len(plan) - 1))
    assert all(b - a <= max_rows for a, b in plan)
    assert all(sizes[a:b].sum() <= target + sizes.max() for a, b in plan)
    lower = max(-(-n // max_rows), -(-int(sizes.sum()) // int(target + sizes.max())))
    assert lower <= len(plan) <= min(n, -(-n // max_rows) + -(-int(sizes.sum()) // target))
    assert plan_shards(np.zeros(0, np.int64), 5, 5) == [(0, 0)]


def test_row_nbytes_matches_per_row_reference():
    t = pa.table({"id": ["a", "bb", None], "text": ["xyz", "", "é"], "n": pa.array([1, 2, 3], pa.int64())})
    ref = [sum(len((v or "").encode()) + 4 for v in (t["id"][i].as_py(), t["text"][i].as_py())) + 8 for i in range(3)]
    assert row_nbytes(t).tolist() == ref


def test_bad_selection_and_out_are_refused(made, tmp_path, capsys):
    d, sel, rel = made
    broken = tmp_path / "sel"
    shutil.copytree(sel, broken)
    os.remove(broken / "manifest.json")
    with pytest.raises(InputError, match="no manifest.json"):
        make_release(broken, tmp_path / "r", name="x")
    shutil.copy(sel / "manifest.json", broken / "manifest.json")
    t = pq.read_table(broken / "selected-00000-of-00001.parquet")
    pq.write_table(t.slice(1), broken / "selected-00000-of-00001.parquet")
    assert run("release", "--selection", broken, "--out", tmp_path / "r", "--name", "x") == 2
    assert "selected-00000-of-00001.parquet: 120 rows, manifest.json says 121" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("not a release")
    assert run("release", "--selection", sel, "--out", tmp_path / "mine", "--name", "x") == 2
    assert (tmp_path / "mine" / "keep.txt").exists() and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_release_of_beam_selection_matches_cli_release(made, tmp_path):
    """The Beam job's layout (scores-*, per-shard selected-*, no input checksums) gives the same data."""
    from lmsieve.pipelines.features import NgramFeature
    from lmsieve.pipelines.features_job import run_features_job
    from lmsieve.pipelines.options import make_options
    from lmsieve.pipelines.selection_job import SelectionConfig, run_selection_job
    from lmsieve.sampling.select import Budget

    pool = pq.read_table(POOL)
    (tmp_path / "pool").mkdir()
    for i in range(3):
        pq.write_table(pool.slice(i * 406, 406), tmp_path / "pool" / f"part-{i}.parquet")
    opts = make_options(["--runner=FnApiRunner"])
    run_features_job(str(tmp_path / "pool"), str(tmp_path / "feat"), [NgramFeature()], options=opts, progress_secs=0)
    run_selection_job(str(tmp_path / "pool"), str(tmp_path / "feat"), [str(TARGET)], str(tmp_path / "bsel"),
                      SelectionConfig(method="dsir", budget=Budget(fraction=0.1), seed=0), options=opts,
                      progress_secs=0)
    m = make_release(tmp_path / "bsel", tmp_path / "brel", name="sample python", max_rows_per_shard=MAX_ROWS)
    assert verify_release(tmp_path / "brel") == []
    for a, b in zip(_shards(made[2]), _shards(tmp_path / "brel"), strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert all(len(f["sha256"]) == 64 and f["sha256_by"] == "release" for f in m["inputs"]["pool"])


def test_licence_column_declared_licences_and_job_spec(tmp_path):
    pool = pq.read_table(POOL).slice(0, 300)
    lic = {"code_go": "BSD-3-Clause", "code_python": "PSF-2.0", "math": "CC0-1.0"}
    pool = pool.append_column("license", pa.array([lic.get(d) for d in pool.column("domain").to_pylist()]))
    pq.write_table(pool, tmp_path / "pool.parquet")
    assert run("select", "--method", "dsir", "--target", TARGET, "--pool", tmp_path / "pool.parquet", "--keep", 30,
               "--out", tmp_path / "sel", "--no-progress") == 0
    spec = Path(__file__).resolve().parents[1] / "jobs" / "local_demo.toml"
    assert run("release", "--selection", tmp_path / "sel", "--out", tmp_path / "rel", "--name", "lic",
               "--license", "bsd-3-clause", "--license", "psf-2.0", "--job-spec", spec) == 0
    assert verify_release(tmp_path / "rel") == []
    m = json.loads((tmp_path / "rel" / "manifest.json").read_text())
    got = pa.concat_tables([pq.read_table(p) for p in _shards(tmp_path / "rel")]).column("license").to_pylist()
    want = {("<none>" if v is None else v): got.count(v) for v in set(got)}
    assert m["counts"]["released"]["per_license"] == dict(sorted(want.items())) and sum(want.values()) == 30
    card = (tmp_path / "rel" / "README.md").read_text()
    assert 'license: ["bsd-3-clause", "psf-2.0"]' in card and "| PSF-2.0 |" in card
    assert (tmp_path / "rel" / "job.toml").read_bytes() == spec.read_bytes() and m["job_spec"] == "job.toml"
    assert not (tmp_path / "rel" / "LICENSES.md").exists() and m["licenses"]["file"] is None
