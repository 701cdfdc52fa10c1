"""`lmsieve release --format jsonl|jsonl.gz`: the same documents as the Parquet release, verified."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lmsieve.cli.main import main
from lmsieve.release import make_release, verify_release

SAMPLE = Path(__file__).resolve().parents[1] / "lmsieve" / "data" / "sample"


@pytest.fixture(scope="module")
def selection(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rel")
    out = d / "sel"
    assert main(["select", "--method", "dsir", "--target", str(SAMPLE / "target_code_python.parquet"), "--pool",
                 str(SAMPLE / "pool.parquet"), "--keep", "60", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz"])
def test_jsonl_release_holds_the_parquet_release_documents_and_verifies(selection, tmp_path, fmt):
    ref = make_release(selection, tmp_path / "pq", name="t")
    m = make_release(selection, tmp_path / fmt, name="t", fmt=fmt, max_rows_per_shard=25)
    assert verify_release(tmp_path / fmt) == []
    assert [s["path"].rsplit("-of-", 1)[1] for s in m["shards"]] == [f"00003.{fmt}"] * 3
    want = pa.concat_tables(pq.read_table(tmp_path / "pq" / s["path"]) for s in ref["shards"]).to_pylist()
    opener = gzip.open if fmt.endswith(".gz") else open
    got = []
    for s in m["shards"]:
        with opener(tmp_path / fmt / s["path"], "rt", encoding="utf-8") as f:
            got += [json.loads(line) for line in f]
    assert got == want  # every column, every row, in order
    assert m["counts"]["released"] == ref["counts"]["released"]
    card = (tmp_path / fmt / "README.md").read_text()
    assert f'load_dataset("json", data_files="RELEASE_DIR/data/train-*.{fmt}"' in card

    # a changed document is caught (checksum and recount)
    p = tmp_path / fmt / m["shards"][0]["path"]
    with opener(p, "rt", encoding="utf-8") as f:
        lines = f.readlines()
    row = json.loads(lines[0])
    row["text"] = row["text"] + " extra words"
    lines[0] = json.dumps(row, ensure_ascii=False) + "\n"
    with opener(p, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    problems = [str(x) for x in verify_release(tmp_path / fmt)]
    assert any("sha256" in x for x in problems) and any("characters" in x for x in problems), problems


def test_jsonl_gz_release_is_byte_reproducible(selection, tmp_path):
    make_release(selection, tmp_path / "a", name="t", fmt="jsonl.gz")
    make_release(selection, tmp_path / "b", name="t", fmt="jsonl.gz")
    assert (tmp_path / "a" / "checksums.sha256").read_bytes() == (tmp_path / "b" / "checksums.sha256").read_bytes()
