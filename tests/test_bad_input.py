"""Bad input, accounted for (issue #9): every bad input has one exact outcome.

Either an error naming the file and the row (API: InputError/ConfigError; CLI: one line, exit 2),
or, with ``on_invalid="quarantine"``, the document leaves the run, is listed with its reason in
``quarantine.parquet`` and counted, so that ``input = selected + rejected + quarantined``.
Expected values are written out by hand from the inputs each test builds.
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lmsieve
from lmsieve.cli.main import main
from lmsieve.schemas.errors import ConfigError, InputError
from lmsieve.schemas.quarantine import Quarantine

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def docs(n: int, prefix: str = "d", words: int = 12) -> dict:
    return {"id": [f"{prefix}{i}" for i in range(n)],
            "text": [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(words + i % 5)) for i in range(n)]}


def write(path, cols: dict, schema: pa.Schema | None = None) -> str:
    pq.write_table(pa.table(cols, schema=schema), path)
    return str(path)


def bad_utf8_strings(values: list[bytes]) -> pa.Array:
    """A ``string`` array holding raw bytes as given (Arrow does not check them on creation)."""
    return pa.array(values, pa.binary()).view(pa.string())


@pytest.fixture
def files(tmp_path):
    target = write(tmp_path / "target.parquet", docs(8, "t"))
    return tmp_path, target


def cli(*argv) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(list(argv))
    return rc, err.getvalue()


def cli_select(tmp_path, pool, target, *extra) -> tuple[int, str]:
    return cli("select", "--method", "zipfit", "--pool", *([pool] if isinstance(pool, str) else pool),
               "--target", target, "--keep", "3", "--out", str(tmp_path / "out"), "--no-progress", *extra)


def assert_one_line(rc: int, err: str, *parts: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for p in parts:
        assert p in lines[0], (p, lines[0])


def manifest(tmp_path) -> dict:
    return json.loads((tmp_path / "out" / "manifest.json").read_text())


# -- file-level problems: always an error naming the file --------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_corrupt_parquet_names_the_file(files, damage):
    tmp_path, target = files
    good = write(tmp_path / "good.parquet", docs(20))
    raw = open(good, "rb").read()
    bad = tmp_path / "pool-1.parquet"
    if damage == "truncated":
        bad.write_bytes(raw[: len(raw) // 2])
    else:  # intact footer, garbage pages
        b = bytearray(raw)
        b[4:len(raw) // 2] = b"\xab" * (len(raw) // 2 - 4)
        bad.write_bytes(bytes(b))
    with pytest.raises(InputError, match="not a readable Parquet file") as ei:
        lmsieve.select(str(bad), "zipfit", target, keep=3)
    assert str(ei.value).startswith(f"{bad}: not a readable Parquet file")
    rc, err = cli_select(tmp_path, str(bad), target, "--on-invalid", "quarantine")  # no policy makes it readable
    assert_one_line(rc, err, f"error: {bad}: not a readable Parquet file")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_missing_text_column_names_the_file(files):
    tmp_path, target = files
    bad = write(tmp_path / "notext.parquet", {"id": ["a", "b"], "body": ["x", "y"]})
    with pytest.raises(InputError) as ei:
        lmsieve.score(bad, "zipfit", target, on_invalid="quarantine")
    assert str(ei.value).startswith(f"{bad}: missing required column 'text' (columns: id")
    rc, err = cli("score", "--method", "zipfit", "--pool", bad, "--target", target, "--out",
                  str(tmp_path / "s.parquet"), "--no-progress")
    assert_one_line(rc, err, f"{bad}: missing required column 'text'")


def test_empty_target_and_empty_pool_are_errors(files):
    tmp_path, target = files
    empty = write(tmp_path / "empty.parquet", {"id": [], "text": []}, pa.schema([("id", pa.string()), ("text", pa.string())]))
    pool = write(tmp_path / "pool.parquet", docs(10))
    with pytest.raises(ConfigError) as ei:
        lmsieve.select(pool, "dsir", empty, keep=3)
    assert str(ei.value) == f"{empty}: the target set is empty (0 documents)"
    rc, err = cli_select(tmp_path, pool, empty)
    assert_one_line(rc, err, f"{empty}: the target set is empty")
    with pytest.raises(InputError) as ei:
        lmsieve.select(empty, "zipfit", target, keep=3)
    assert str(ei.value) == f"{empty}: the pool is empty (0 documents)"


def test_target_bigger_than_pool_is_fine(files):
    """DSIR with a target larger than the pool is a legitimate use: no error, no warning."""
    tmp_path, _ = files
    pool = pa.table(docs(12, "p", words=110))
    target = pa.table(docs(60, "t", words=110))
    chosen = lmsieve.select(pool, "dsir", target, keep=5, seed=1)
    assert chosen.num_rows == 5 and set(chosen.column("id").to_pylist()) <= set(pool.column("id").to_pylist())
    s = lmsieve.score(pool, "zipfit", target)
    assert s.shape == (12,) and np.isfinite(s).all()


# -- per-document problems: error naming file and row, or quarantine ---------------------------------
def test_null_text(files):
    tmp_path, target = files
    d = docs(10)
    d["text"][7] = None
    pool = write(tmp_path / "pool-1.parquet", d)
    with pytest.raises(InputError) as ei:
        lmsieve.select(pool, "zipfit", target, keep=3)
    assert str(ei.value) == f"{pool}, row 7: null 'text'"
    rc, err = cli_select(tmp_path, pool, target)
    assert_one_line(rc, err, f"{pool}, row 7: null 'text'")
    rc, err = cli_select(tmp_path, pool, target, "--on-invalid", "quarantine")
    assert rc == 0, err
    m = manifest(tmp_path)
    c = m["counts"]
    assert (c["input"], c["selected"], c["rejected"], c["quarantined"]) == (10, 3, 6, 1)
    assert c["quarantined_by_reason"] == {"null text": 1}
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert q == [{"id": "d7", "source": pool, "row": 7, "index": 7, "reason": "null text"}]
    assert {"path": "quarantine.parquet", "rows": 1} in m["outputs"]
    sc = pq.read_table(tmp_path / "out" / "scores.parquet")
    assert "d7" not in sc.column("id").to_pylist() and sc.num_rows == 9


def test_empty_text_is_valid_with_a_defined_score(files):
    tmp_path, target = files
    d = docs(6)
    d["text"][2] = ""
    for method in ("zipfit", "dsir"):
        s = lmsieve.score(pa.table(d), method, target)
        assert s.shape == (6,) and np.isfinite(s).all(), method


def test_huge_text(files):
    tmp_path, target = files
    d = docs(6)
    d["text"][4] = "x" * (10 * 1024 * 1024 + 1)  # one byte over the default 10 MiB
    pool = write(tmp_path / "huge.parquet", d)
    with pytest.raises(InputError) as ei:
        lmsieve.score(pool, "zipfit", target)
    assert str(ei.value).startswith(f"{pool}, row 4: text too large (10,485,761 bytes > max_doc_bytes 10,485,760")
    q = Quarantine("quarantine")
    s = lmsieve.score(pool, "zipfit", target, on_invalid=q)
    assert np.isnan(s[4]) and np.isfinite(np.delete(s, 4)).all()
    assert q.counts() == {"text too large": 1} and q.table().column("row").to_pylist() == [4]
    # configurable: a 100-byte limit catches the longer synthetic texts too
    lens = [len(t.encode()) for t in d["text"]]
    q = Quarantine("quarantine", max_doc_bytes=100)
    lmsieve.score(pool, "zipfit", target, on_invalid=q)
    assert q.table().column("row").to_pylist() == [i for i, n in enumerate(lens) if n > 100]


def test_non_utf8_text(files):
    tmp_path, target = files
    d = docs(8)
    raw = [t.encode() for t in d["text"]]
    raw[3] = b"caf\xe9 latin-1"
    raw[5] = b"\xff\xfe\x00"
    as_string = write(tmp_path / "str.parquet", {"id": d["id"], "text": bad_utf8_strings(raw)})
    as_binary = write(tmp_path / "bin.parquet", {"id": d["id"], "text": pa.array(raw, pa.binary())})
    for pool in (as_string, as_binary):
        with pytest.raises(InputError) as ei:
            lmsieve.select(pool, "zipfit", target, keep=2)
        assert str(ei.value) == f"{pool}, row 3: invalid UTF-8 in 'text'"
        q = Quarantine("quarantine")
        chosen = lmsieve.select(pool, "zipfit", target, keep=2, on_invalid=q)
        assert chosen.num_rows == 2 and q.counts() == {"invalid UTF-8 in text": 2}
        assert q.table().column("row").to_pylist() == [3, 5]
    rc, err = cli_select(tmp_path, as_binary, target)
    assert_one_line(rc, err, f"{as_binary}, row 3: invalid UTF-8 in 'text'")
    # a binary column that is valid UTF-8 is just text
    ok = write(tmp_path / "okbin.parquet", {"id": d["id"], "text": pa.array([t.encode() for t in d["text"]], pa.binary())})
    np.testing.assert_array_equal(lmsieve.score(ok, "zipfit", target), lmsieve.score(pa.table(d), "zipfit", target))


def test_nan_and_inf_feature_values(files):
    tmp_path, target = files
    d = docs(8)
    d["q"] = [0.1, 0.5, float("nan"), 0.3, float("inf"), 0.9, 0.2, -float("inf")]
    pool = write(tmp_path / "feat.parquet", d)
    params = dict(score_columns=["q"], redpajama=False, dsir_refs={}, weights={"q": 1.0})
    with pytest.raises(InputError) as ei:
        lmsieve.select(pool, "meta_rater", target, keep=2, **params)
    assert str(ei.value) == f"{pool}, row 2: non-finite feature"
    q = Quarantine("quarantine")
    chosen = lmsieve.select(pool, "meta_rater", target, keep=2, on_invalid=q, **params)
    assert chosen.column("id").to_pylist() == ["d1", "d5"]  # the two highest finite q (0.5, 0.9)
    assert q.counts() == {"non-finite feature": 3} and q.table().column("row").to_pylist() == [2, 4, 7]


def test_non_finite_scores(files, monkeypatch):
    """A score that is not finite (e.g. from a damaged model) is a per-document problem too."""
    from lmsieve.selectors.zipfit import ZipFit

    tmp_path, target = files
    pool = write(tmp_path / "p.parquet", docs(6))
    orig = ZipFit.score_and_mask

    def nan_on_d1(self, batch):
        s, e = orig(self, batch)
        s = s.copy()
        s[np.asarray(batch.column("id").to_pylist()) == "d1"] = np.nan
        return s, e

    monkeypatch.setattr(ZipFit, "score_and_mask", nan_on_d1)
    with pytest.raises(InputError) as ei:
        lmsieve.score(pool, "zipfit", target)
    assert str(ei.value) == f"{pool}, row 1: non-finite score nan (id 'd1')"
    rc, err = cli_select(tmp_path, pool, target, "--on-invalid", "quarantine")
    assert rc == 0, err
    c = manifest(tmp_path)["counts"]
    assert (c["input"], c["selected"], c["rejected"], c["quarantined"]) == (6, 3, 2, 1)
    assert c["quarantined_by_reason"] == {"non-finite score": 1}


def test_duplicate_ids(files):
    tmp_path, target = files
    a, b = docs(6), docs(6)
    a["id"][4] = a["id"][1]                      # within a file: d1 again at row 4
    b["id"] = [f"e{i}" for i in range(6)]
    b["id"][2] = "d3"                           # across files: d3 of a.parquet again in b.parquet row 2
    pa_, pb = write(tmp_path / "a.parquet", a), write(tmp_path / "b.parquet", b)
    with pytest.raises(InputError) as ei:
        lmsieve.select(pa_, "zipfit", target, keep=2)
    assert str(ei.value) == f"{pa_}, row 4: duplicate id 'd1' (first seen at row 1)"
    from lmsieve.io.inputs import Paths

    a["id"][4] = "d4"
    write(tmp_path / "a.parquet", a)
    with pytest.raises(InputError) as ei:
        lmsieve.select(Paths([pa_, pb]), "zipfit", target, keep=2)
    assert str(ei.value) == f"{pb}, row 2: duplicate id 'd3' (also in {pa_}, row 3)"
    rc, err = cli_select(tmp_path, [pa_, pb], target)
    assert_one_line(rc, err, f"{pb}, row 2: duplicate id 'd3'")
    a["id"][4] = "d1"
    write(tmp_path / "a.parquet", a)
    rc, err = cli_select(tmp_path, [pa_, pb], target, "--on-invalid", "quarantine")
    assert rc == 0, err
    c = manifest(tmp_path)["counts"]
    assert (c["input"], c["selected"], c["rejected"], c["quarantined"]) == (12, 3, 7, 2)
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [(r["id"], r["source"], r["row"], r["index"], r["reason"]) for r in q] == [
        ("d1", pa_, 4, 4, "duplicate id"), ("d3", pb, 2, 8, "duplicate id")]
    sc = pq.read_table(tmp_path / "out" / "scores.parquet").column("id").to_pylist()
    assert sc.count("d1") == 1 and sc.count("d3") == 1 and len(sc) == 10


def test_score_cli_quarantine_file(files):
    tmp_path, target = files
    d = docs(5)
    d["id"][0] = None
    pool = write(tmp_path / "p.parquet", d)
    out = tmp_path / "s.parquet"
    rc, err = cli("score", "--method", "zipfit", "--pool", pool, "--target", target, "--out", str(out),
                  "--no-progress", "--on-invalid", "quarantine")
    assert rc == 0, err
    assert pq.read_table(out).column("id").to_pylist() == ["d1", "d2", "d3", "d4"]
    assert pq.read_table(tmp_path / "s.quarantine.parquet").to_pylist() == [
        {"id": None, "source": pool, "row": 0, "index": 0, "reason": "null id"}]


def test_bad_policy_is_a_config_error(files):
    with pytest.raises(ConfigError, match="on_invalid: must be one of error, quarantine"):
        lmsieve.score(["a b c"], "zipfit", ["a b"], on_invalid="skip")


# -- the Beam jobs: same checks, same policy ------------------------------------------------------
def _spec(tmp_path, pool_dir, target, on_invalid: str) -> dict:
    return {"inputs": {"pool": str(pool_dir), "target": target, "on_invalid": on_invalid},
            "features": {"out": str(tmp_path / "feat"), "compute": ["zipfit"]},
            "selection": {"method": "zipfit", "out": str(tmp_path / "sel"), "keep": 4, "num_quantiles": 9},
            "beam": {"runner": "FnApiRunner", "direct_running_mode": "in_memory"}}


def test_beam_jobs_quarantine_and_error(files):
    from lmsieve.pipelines.jobspec import run_job, validate_spec

    tmp_path, target = files
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    a, b = docs(10), docs(10, "e")
    a["text"][2] = None
    a["id"][6] = "d5"                            # repeated within the shard
    b["text"][9] = "y" * 300
    raw = [t.encode() for t in b["text"]]
    raw[1] = b"\xc3("
    pa_ = write(pool_dir / "a.parquet", a)
    pb = write(pool_dir / "b.parquet", {"id": b["id"], "text": bad_utf8_strings(raw)})
    spec = validate_spec({**_spec(tmp_path, pool_dir, target, "error")})
    with pytest.raises(Exception, match=f"{pa_}, row 2: null 'text'"):  # Beam may wrap the worker's error
        run_job(spec, progress_secs=0)
    raw_spec = _spec(tmp_path, pool_dir, target, "quarantine")
    raw_spec["inputs"]["max_doc_bytes"] = 200
    res = run_job(validate_spec(raw_spec), progress_secs=0)
    assert res.features.quarantined == {"duplicate id": 1, "invalid UTF-8 in text": 1, "null text": 1,
                                        "text too large": 1}
    c = res.selection["counts"]
    assert (c["input"], c["selected"], c["rejected"], c["quarantined"]) == (20, 4, 12, 4)
    assert c["quarantined_by_reason"] == res.features.quarantined
    q = pq.read_table(tmp_path / "sel" / "quarantine.parquet").to_pylist()
    assert [(r["source"], r["row"], r["reason"]) for r in q] == [
        (pa_, 2, "null text"), (pa_, 6, "duplicate id"), (pb, 1, "invalid UTF-8 in text"), (pb, 9, "text too large")]
    # the same documents as the API with the same policy
    qa = Quarantine("quarantine", max_doc_bytes=200)
    from lmsieve.io.inputs import Paths

    ref = lmsieve.select(Paths([pa_, pb]), "zipfit", target, keep=4, on_invalid=qa)
    got = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "sel").glob("selected-*.parquet"))])
    assert sorted(got.column("id").to_pylist()) == sorted(ref.column("id").to_pylist())
    assert qa.counts() == res.features.quarantined


def test_beam_counts_add_up_with_non_finite_stored_scores():
    """The selection job's counts: reasons recorded by the features job (footers), the rest of the
    invalid rows had a non-finite stored score; footers without reasons are counted as such."""
    from lmsieve.pipelines.selection_job import UNRECORDED, CountsFn, _recorded_quarantine

    metas = [{"stats": [{"invalid": 2}, {"invalid": 1}], "quarantined": {"null text": 2, "duplicate id": 1}},
             {"stats": [{"invalid": 2}]}]  # an older side file: no reasons in its footer
    rec = _recorded_quarantine(metas)
    assert rec == {"duplicate id": 1, "invalid (reason not recorded)": 2, "null text": 2} and UNRECORDED in rec
    fn = CountsFn(rec)
    acc = fn.add_input(fn.create_accumulator(), {"input": 50, "invalid": 7, "selected": 10, "ineligible": 0})
    c = fn.extract_output(acc)
    assert (c["input"], c["selected"], c["rejected"], c["quarantined"], c["invalid"]) == (50, 10, 33, 7, 7)
    assert c["quarantined_by_reason"] == {**rec, "non-finite score": 2}
