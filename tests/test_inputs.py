"""One reader for every input format: the same selection from the same documents in each format,
column mapping, generated and converted ids, and errors that name the expected format.

Runs on the bundled sample (lmsieve/data/sample): no shared data needed."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import lmsieve
from lmsieve.io.inputs import Paths, load_docs
from lmsieve.schemas.errors import InputError

SAMPLE = Path(__file__).resolve().parents[1] / "lmsieve" / "data" / "sample"
N = 250  # documents: enough for DSIR's distribution, fast


@pytest.fixture(scope="module")
def docs() -> pa.Table:
    return pq.read_table(SAMPLE / "pool.parquet").slice(0, N)


@pytest.fixture(scope="module")
def target() -> pa.Table:
    return pq.read_table(SAMPLE / "target_code_python.parquet")


def write_jsonl(rows, path: Path, opener=open):
    with opener(path, "wt") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


@pytest.fixture(scope="module")
def formats(docs, tmp_path_factory) -> dict[str, Path]:
    """The same documents as Parquet, JSONL, JSONL.gz, JSONL.zst, CSV, TSV and a datasets directory."""
    import datasets
    import zstandard

    d = tmp_path_factory.mktemp("formats")
    rows = docs.to_pylist()
    out = {"parquet": d / "docs.parquet"}
    pq.write_table(docs, out["parquet"])
    out["jsonl"] = write_jsonl(rows, d / "docs.jsonl")
    out["jsonl.gz"] = write_jsonl(rows, d / "docs.jsonl.gz", gzip.open)
    zpath = d / "docs.jsonl.zst"
    zpath.write_bytes(zstandard.ZstdCompressor().compress(out["jsonl"].read_bytes()))
    out["jsonl.zst"] = zpath
    docs.to_pandas().to_csv(d / "docs.csv", index=False)
    out["csv"] = d / "docs.csv"
    docs.to_pandas().to_csv(d / "docs.tsv", index=False, sep="\t")
    out["tsv"] = d / "docs.tsv"
    datasets.Dataset(docs).save_to_disk(str(d / "hf"))
    out["datasets"] = d / "hf"
    return out


def test_every_format_reads_the_same_table(docs, formats):
    for name, path in formats.items():
        got, files = load_docs(str(path))
        assert got.column("id").equals(docs.column("id")), name
        assert got.column("text").equals(docs.column("text")), name
        assert got.column("domain").to_pylist() == docs.column("domain").to_pylist(), name
        assert len(files) == 1 and files[0].rows == N, name


def test_same_selection_and_scores_from_every_format(docs, target, formats):
    ref_scores = lmsieve.score(str(formats["parquet"]), method="dsir", target=target)
    ref = lmsieve.select(str(formats["parquet"]), method="dsir", target=target, keep=40, seed=3)
    assert len(ref_scores) == N and ref.num_rows == 40 and np.isfinite(ref_scores).all()
    for name, path in formats.items():
        s = lmsieve.score(str(path), method="dsir", target=target)
        np.testing.assert_array_equal(s, ref_scores, err_msg=name)  # bit for bit
        sel = lmsieve.select(str(path), method="dsir", target=target, keep=40, seed=3)
        assert sel.column("id").to_pylist() == ref.column("id").to_pylist(), name


def test_a_dataset_folder_of_jsonl_shards_and_a_datasetdict(docs, tmp_path):
    import datasets

    folder = tmp_path / "corpus" / "data"
    folder.mkdir(parents=True)
    rows = docs.to_pylist()
    write_jsonl(rows[:150], folder / "train-00000-of-00002.jsonl")
    write_jsonl(rows[150:], folder / "train-00001-of-00002.jsonl")
    (tmp_path / "corpus" / "README.md").write_text("a dataset card\n")
    (tmp_path / "corpus" / "manifest.json").write_text("{}\n")  # plain .json in a folder: not an input
    got, files = load_docs(str(tmp_path / "corpus"))
    assert got.column("id").equals(docs.column("id")) and len(files) == 2

    datasets.DatasetDict({"train": datasets.Dataset(docs)}).save_to_disk(str(tmp_path / "dd1"))
    assert load_docs(str(tmp_path / "dd1"))[0].column("id").equals(docs.column("id"))
    datasets.DatasetDict({"train": datasets.Dataset(docs), "test": datasets.Dataset(docs.slice(0, 5))}).save_to_disk(
        str(tmp_path / "dd2"))
    with pytest.raises(InputError, match=r"DatasetDict with splits .*name one, e.g. .*dd2/"):
        load_docs(str(tmp_path / "dd2"))
    assert load_docs(str(tmp_path / "dd2" / "test"))[0].num_rows == 5


def test_dolma_and_datatrove_jsonl_layouts(docs, tmp_path):
    rows = docs.slice(0, 20).to_pylist()
    dolma = tmp_path / "dolma" / "documents"
    dolma.mkdir(parents=True)
    write_jsonl([{"id": r["id"], "text": r["text"], "source": "web", "added": "2024-01-01T00:00:00Z",
                  "metadata": {"url": f"https://x/{i}", "n": i} if i % 2 else {"lang": "en"}}
                 for i, r in enumerate(rows)], dolma / "part-0000.json.gz", gzip.open)
    got, _ = load_docs(str(tmp_path / "dolma"))
    assert got.column("id").to_pylist() == [r["id"] for r in rows]
    assert json.loads(got.column("metadata")[1].as_py()) == {"n": 1, "url": "https://x/1"}  # nested -> JSON text

    from datatrove.data import Document
    from datatrove.pipeline.writers import JsonlWriter

    with JsonlWriter(str(tmp_path / "dt")) as w:
        for r in rows:
            w.write(Document(text=r["text"], id=r["id"], metadata={"domain": r["domain"]}))
    got, files = load_docs(str(tmp_path / "dt"))
    assert files[0].path.endswith(".jsonl.gz")
    assert got.column("id").to_pylist() == [r["id"] for r in rows]
    assert got.column("text").to_pylist() == [r["text"] for r in rows]


def test_column_mapping_api_and_cli(docs, target, tmp_path):
    mapped = docs.rename_columns(["uid" if c == "id" else "body" if c == "text" else c for c in docs.column_names])
    mapped.to_pandas().to_csv(tmp_path / "pool.csv", index=False)
    ref = lmsieve.select(docs, method="dsir", target=target, keep=25, seed=1)
    got = lmsieve.select(str(tmp_path / "pool.csv"), method="dsir", target=target, keep=25, seed=1,
                         text_column="body", id_column="uid")
    assert got.column("id").to_pylist() == ref.column("id").to_pylist()
    # in-memory tables map too
    got = lmsieve.select(mapped, method="dsir", target=target, keep=25, seed=1, text_column="body", id_column="uid")
    assert got.column("id").to_pylist() == ref.column("id").to_pylist()
    # a missing mapped column names itself and the columns there are
    with pytest.raises(InputError, match=r"pool.csv: no column 'content' \(--text-column\); columns: uid, body"):
        load_docs(str(tmp_path / "pool.csv"), text_column="content")

    tgt = target.rename_columns(["content" if c == "text" else c for c in target.column_names])
    pq.write_table(tgt, tmp_path / "target.parquet")
    out = tmp_path / "sel"
    r = subprocess.run([sys.executable, "-m", "lmsieve.cli.main", "select", "--method", "dsir", "--pool",
                        str(tmp_path / "pool.csv"), "--text-column", "body", "--id-column", "uid", "--target",
                        str(tmp_path / "target.parquet"), "--target-text-column", "content", "--keep", "25",
                        "--seed", "1", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    sel = pa.concat_tables(pq.read_table(p) for p in sorted(out.glob("selected-*.parquet")))
    assert sorted(sel.column("id").to_pylist()) == sorted(ref.column("id").to_pylist())


def test_generated_ids_rule_and_stability_across_runs_and_shardings(docs, target, tmp_path):
    rows = [{"text": r["text"], "domain": r["domain"]} for r in docs.to_pylist()]
    whole = tmp_path / "whole"
    whole.mkdir()
    write_jsonl(rows, whole / "all.jsonl")
    a, _ = load_docs(str(whole / "all.jsonl"))
    assert a.column("id").to_pylist() == [f"all.jsonl:{i}" for i in range(N)]  # the documented rule
    assert load_docs(str(whole / "all.jsonl"))[0].column("id").equals(a.column("id"))  # another run

    # the same rows read with other files, in other orders, or one file at a time: same ids
    sh = tmp_path / "sharded"
    sh.mkdir()
    write_jsonl(rows[:100], sh / "s0.jsonl")
    write_jsonl(rows[100:], sh / "s1.jsonl.gz", gzip.open)
    both, _ = load_docs(str(sh))
    alone, _ = load_docs(str(sh / "s1.jsonl.gz"))
    reversed_, _ = load_docs(Paths([str(sh / "s1.jsonl.gz"), str(sh / "s0.jsonl")]))
    assert both.column("id").to_pylist()[100:] == alone.column("id").to_pylist() == \
        [f"s1.jsonl.gz:{i}" for i in range(N - 100)]
    assert sorted(reversed_.column("id").to_pylist()) == sorted(both.column("id").to_pylist())
    # and the scores of those documents do not depend on the sharding
    s_both = lmsieve.score(str(sh), method="zipfit", target=target.slice(0, 20))
    s_alone = lmsieve.score(str(sh / "s1.jsonl.gz"), method="zipfit", target=target.slice(0, 20))
    np.testing.assert_array_equal(s_both[100:], s_alone)

    # two files with the same base name cannot both get generated ids
    (tmp_path / "x" / "a").mkdir(parents=True)
    (tmp_path / "x" / "b").mkdir()
    write_jsonl(rows[:3], tmp_path / "x" / "a" / "part.jsonl")
    write_jsonl(rows[3:6], tmp_path / "x" / "b" / "part.jsonl")
    with pytest.raises(InputError, match=r"shares its name with .*--id-column"):
        load_docs(str(tmp_path / "x"))


def test_non_string_ids_are_converted_by_the_stated_rule(tmp_path):
    write_jsonl([{"id": 7, "text": "a"}, {"id": 12345678901, "text": "b"}], tmp_path / "ints.jsonl")
    assert load_docs(str(tmp_path / "ints.jsonl"))[0].column("id").to_pylist() == ["7", "12345678901"]
    write_jsonl([{"id": 7.0, "text": "a"}, {"id": 8, "text": "b"}], tmp_path / "whole.jsonl")
    assert load_docs(str(tmp_path / "whole.jsonl"))[0].column("id").to_pylist() == ["7", "8"]
    (tmp_path / "ids.csv").write_text("id,text\n1,one\n2,two\n")
    assert load_docs(str(tmp_path / "ids.csv"))[0].column("id").to_pylist() == ["1", "2"]
    write_jsonl([{"id": 1.5, "text": "a"}], tmp_path / "frac.jsonl")
    with pytest.raises(InputError, match=r"frac.jsonl, row 0: id 1.5 is not a whole number"):
        load_docs(str(tmp_path / "frac.jsonl"))
    pq.write_table(pa.table({"id": [True], "text": ["a"]}), tmp_path / "bool.parquet")
    with pytest.raises(InputError, match=r"bool.parquet: column 'id' has type bool; ids must be strings or integers"):
        load_docs(str(tmp_path / "bool.parquet"))
    t = pa.table({"id": [3, 4], "text": ["a", "b"]})  # in-memory too
    assert load_docs(t)[0].column("id").to_pylist() == ["3", "4"]


def test_errors_name_the_file_row_and_expected_format(tmp_path):
    (tmp_path / "notes.txt").write_text("just some words\n")
    with pytest.raises(InputError, match=r"notes.txt: unrecognised file format \(expected Parquet, JSON Lines"):
        load_docs(str(tmp_path / "notes.txt"))
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": \n')
    with pytest.raises(InputError, match=r"bad.jsonl, row 1: not valid JSON .*expected JSON Lines"):
        load_docs(str(tmp_path / "bad.jsonl"))
    (tmp_path / "array.json").write_text('[{"id": "a", "text": "x"}]\n')
    with pytest.raises(InputError, match=r"array.json, row 0: .*JSON array; expected JSON Lines"):
        load_docs(str(tmp_path / "array.json"))
    (tmp_path / "fake.parquet").write_text("not parquet")
    with pytest.raises(InputError, match=r"fake.parquet: not a readable Parquet file"):
        load_docs(str(tmp_path / "fake.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: matches no input files \(expected Parquet, JSON Lines"):
        load_docs(str(tmp_path / "empty"))
    write_jsonl([{"text": "x"}], tmp_path / "named.jsonl")
    with pytest.raises(InputError, match=r"no column 'uid' \(--id-column\); columns: text"):
        load_docs(str(tmp_path / "named.jsonl"), id_column="uid")


def test_beam_inputs_are_parquet_and_say_how_to_convert(tmp_path):
    from lmsieve.pipelines.fileio import expand_inputs

    write_jsonl([{"id": "a", "text": "x"}], tmp_path / "d.jsonl")
    with pytest.raises(InputError, match=r"Beam jobs and datatrove steps read Parquet: convert it first with "
                                         r"`lmsieve convert"):
        expand_inputs(str(tmp_path / "d.jsonl"))


def test_convert_writes_parquet_with_the_readers_ids(docs, tmp_path):
    rows = [{"body": r["text"], "domain": r["domain"]} for r in docs.slice(0, 50).to_pylist()]
    write_jsonl(rows, tmp_path / "c.jsonl.gz", gzip.open)
    r = subprocess.run([sys.executable, "-m", "lmsieve.cli.main", "convert", str(tmp_path / "c.jsonl.gz"),
                        "--text-column", "body", "--out", str(tmp_path / "pq")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got, _ = load_docs(str(tmp_path / "pq"))
    want, _ = load_docs(str(tmp_path / "c.jsonl.gz"), text_column="body")
    assert got.column("id").to_pylist() == [f"c.jsonl.gz:{i}" for i in range(50)]
    assert got.column("id").equals(want.column("id")) and got.column("text").equals(want.column("text"))
    m = json.loads((tmp_path / "pq" / "manifest.json").read_text())
    assert m["counts"]["written"] == 50 and m["inputs"]["input"][0]["sha256"]
