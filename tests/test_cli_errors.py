"""Bad invocations: one line on stderr, exit 2, no traceback, nothing left behind (issue 15).

Runs the real CLI in a subprocess over a table of bad invocations on the bundled sample."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "lmsieve" / "data" / "sample"
POOL, TARGET = str(SAMPLE / "pool.parquet"), str(SAMPLE / "target_code_python.parquet")


def lmsieve(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lmsieve.cli.main", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "afile.txt").write_text("I am a file\n")
    (d / "scoresdir").mkdir()
    pq.write_table(pa.table({"id": ["a", "b"], "body": ["x", "y"]}), d / "notext.parquet")
    (d / "bad.jsonl").write_text('{"id": "a", "text": "ok"}\nnot json\n')
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), d / "empty.parquet")
    (d / "notarelease").mkdir()
    pq.write_table(pa.table({"id": ["a"], "text": ["x"]}), d / "notarelease" / "selected-00000-of-00001.parquet")
    (d / "notarelease" / "manifest.json").write_text('{"command": "select", "counts": {}}\n')
    return d


SEL = ["select", "--method", "dsir", "--target", TARGET, "--pool", POOL]
SCORE = ["score", "--method", "dsir", "--target", TARGET, "--pool", POOL]

#: (invocation, a regex the one line must match); "{d}" is the work directory.
CASES = [
    (SEL + ["--param", "num_bucket=20000", "--keep", "10", "--out", "{d}/o1"],
     r"dsir has no parameter 'num_bucket' \(did you mean 'num_buckets'\?\); valid: num_buckets=10000, ngrams=2"),
    (SEL + ["--param", "num_buckets=abc", "--keep", "10", "--out", "{d}/o2"],
     r"dsir parameter num_buckets='abc': expected int"),
    (SEL + ["--param", "num_buckets=-5", "--keep", "10", "--out", "{d}/o3"], r"num_buckets=-5: must be > 0"),
    (SEL + ["--param", "num_buckets", "--keep", "10", "--out", "{d}/o4"], r"--param 'num_buckets': expected KEY=VALUE"),
    (SCORE + ["--out", "{d}/scoresdir/"], r"--out .*scoresdir/: is a directory; this command writes one file"),
    (SCORE + ["--out", "{d}/scoresdir"], r"--out .*scoresdir: is a directory"),
    (SEL + ["--keep", "10", "--out", "{d}/afile.txt"], r"--out .*afile.txt: is an existing file; this command writes a directory"),
    (SEL + ["--keep", "10", "--out", "{d}/afile.txt/sub"], r"afile.txt is a file, not a directory"),
    (["select", "--method", "nosuch", "--target", TARGET, "--pool", POOL, "--keep", "1", "--out", "{d}/o5"],
     r"argument --method: invalid choice: 'nosuch'"),
    (SEL + ["--keep-fraction", "2", "--out", "{d}/o6"], r"a fractional keep must be in \(0, 1\], got 2.0"),
    (["select", "--method", "dsir", "--target", TARGET, "--pool", "{d}/missing.parquet", "--keep", "1", "--out", "{d}/o7"],
     r"missing.parquet: no such file or directory"),
    (["select", "--method", "dsir", "--target", TARGET, "--pool", "{d}/notext.parquet", "--keep", "1", "--out", "{d}/o8"],
     r"notext.parquet: missing required column 'text' \(columns: id, body; name yours with --text-column\)"),
    (["select", "--method", "dsir", "--target", TARGET, "--pool", "{d}/bad.jsonl", "--keep", "1", "--out", "{d}/o9"],
     r"bad.jsonl, row 1: not valid JSON .*expected JSON Lines"),
    (["select", "--method", "dsir", "--target", TARGET, "--pool", "{d}/afile.txt", "--keep", "1", "--out", "{d}/o10"],
     r"afile.txt: unrecognised file format \(expected Parquet, JSON Lines"),
    (["select", "--method", "dsir", "--target", "{d}/empty.parquet", "--pool", POOL, "--keep", "1", "--out", "{d}/o11"],
     r"the target set is empty"),
    (SEL + ["--text-column", "body", "--keep", "1", "--out", "{d}/o12"], r"no column 'body' \(--text-column\)"),
    (["select", "--method", "zipfit", "--target", TARGET, "--pool", POOL, "--param", "n_jobs=0", "--keep", "1",
      "--out", "{d}/o13"], r"zipfit parameter n_jobs=0: must be > 0"),
    (["select", "--method", "betr", "--target", TARGET, "--pool", POOL, "--param", "token_fraction=3", "--keep", "1",
      "--out", "{d}/o14"], r"betr parameter token_fraction=3: must be in \(0, 1\]"),
    (["verify", "{d}/notarelease"], r"notarelease: not a release \(its manifest.json is a `select` run's\)"),
    (["verify", "{d}/afile.txt"], r"afile.txt: not a directory"),
    (["eval", "--pool", POOL, "--target", TARGET, "--budget-chars", "1000", "--out", "{d}/afile.txt"],
     r"--out .*afile.txt: is an existing file"),
    (["methods", "nosuch"], r"unknown method 'nosuch'; available: betr, classifier, color, dsir"),
    (["convert", "{d}/bad.jsonl", "--out", "{d}/o15"], r"bad.jsonl, row 1: not valid JSON"),
]


def in_process(argv, capsys) -> tuple[int, str]:
    """``lmsieve ARGV`` through ``main()`` (an exception escaping it would be a traceback)."""
    from lmsieve.cli.main import main

    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("argv,pattern", CASES, ids=[f"{c[0][0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_invocation_is_one_line_exit_2_and_leaves_nothing(work, argv, pattern, capsys, monkeypatch):
    import re

    monkeypatch.chdir(work)
    before = snapshot(work)
    rc, err = in_process([a.format(d=work) for a in argv], capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, (rc, err)
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]
    assert lines[0].startswith("lmsieve ")
    assert snapshot(work) == before  # no output dir, no .tmp, no log


@pytest.mark.parametrize("i", [0, 4, 8])
def test_bad_invocations_through_the_real_command(work, i):
    """The same from a separate process: stderr is exactly one line, no traceback."""
    import re

    argv, pattern = CASES[i]
    before = snapshot(work)
    r = lmsieve(*[a.format(d=work) for a in argv], cwd=work)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert snapshot(work) == before


def test_keep_more_than_the_pool_says_so(tmp_path):
    small = tmp_path / "small.parquet"
    pq.write_table(pq.read_table(POOL).slice(0, 200), small)
    r = lmsieve(*SEL[:-1], small, "--keep", "5000", "--out", tmp_path / "o", "--no-progress")
    assert r.returncode == 0, r.stderr
    n = int(r.stdout.split()[1])
    assert n < 200
    assert f"asked to keep 5000 documents but the pool has 200 ({200 - n} not eligible for dsir: under " \
           f"min_example_length words): selected {n}" in r.stderr


def test_methods_lists_every_method_with_paper_parameters_and_when():
    from lmsieve.selectors.base import available_methods

    r = lmsieve("methods")
    assert r.returncode == 0
    for m in available_methods():
        assert f"\n{m}: " in "\n" + r.stdout, m
    assert "DSIR: Data Selection with Importance Resampling (Xie" in r.stdout
    assert "num_buckets=10000" in r.stdout and "when: " in r.stdout
    assert r.stdout.count("when: ") == len(available_methods())
    r = lmsieve("methods", "zipfit")
    assert "codec: str = 'gzip'" in r.stdout and "level: int = 1" in r.stdout


def test_select_threshold_keeps_every_eligible_document_at_or_above_it(tmp_path):
    """`--threshold` (documented in docs/datatrove.md) exists and keeps eligible & score >= T."""
    import numpy as np

    small = tmp_path / "small.parquet"
    pq.write_table(pq.read_table(POOL).slice(0, 300), small)
    r = lmsieve(*SCORE[:-1], small, "--out", tmp_path / "s.parquet", "--no-progress")
    assert r.returncode == 0, r.stderr
    sc = pq.read_table(tmp_path / "s.parquet")
    s, e = sc.column("score").to_numpy(), sc.column("eligible").to_numpy(zero_copy_only=False)
    t = float(np.median(s[e]))
    r = lmsieve(*SEL[:-1], small, "--threshold", repr(t), "--out", tmp_path / "o", "--no-progress")
    assert r.returncode == 0, r.stderr
    got = set(pa.concat_tables(pq.read_table(p) for p in (tmp_path / "o").glob("selected-*.parquet"))
              .column("id").to_pylist())
    want = {i for i, x, ok in zip(sc.column("id").to_pylist(), s, e) if ok and x >= t}
    assert got == want and len(want) > 10
