"""`lmsieve select` resumes (issue #9): killed at any step, a rerun skips the finished steps (fit and
score calls are counted) and writes an output directory byte-identical to an uninterrupted run's.

Kills are injected in-process (an exception inside a step, after its artifacts are written and
before its marker) for every step of DSIR and ZIP-FIT, and once for real: a subprocess that
SIGKILLs itself inside a step, leaving its temporary files behind. The Beam features job's
kill-and-rerun test (byte-identical side files, only missing shards recomputed, finished ones not
rewritten) is tests/test_beam_resume.py.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import pool_slice, target_set

from lmsieve.selection import steps as select_steps
from lmsieve.cli.main import main
from lmsieve.io.output import RunOutput
from lmsieve.io.runs import RUNS_DIR, RunDir, config_hash
from lmsieve.selectors.dsir import DSIR
from lmsieve.selectors.zipfit import ZipFit

STEPS = ["fit", "score", "sample"]
KILL_POINTS = STEPS + ["write"]


class Killed(RuntimeError):
    pass


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    pool = pool_slice(300)
    pq.write_table(pool.slice(0, 170), d / "pool-0.parquet")
    pq.write_table(pool.slice(170), d / "pool-1.parquet")
    pq.write_table(target_set("heldout_code_python").slice(0, 12), d / "target.parquet")
    return d


def select_args(d, method, out, *extra, seed=3):
    return ["select", "--method", method, "--target", str(d / "target.parquet"),
            "--pool", str(d / "pool-0.parquet"), str(d / "pool-1.parquet"),
            "--keep", "40", "--seed", str(seed), "--out", str(out), "--no-progress", *extra]


def output_bytes(out) -> dict[str, bytes]:
    """Every file of the output directory (the run directory and the run log left out), by relative path."""
    got = {}
    for dirpath, dirnames, names in os.walk(out):
        dirnames[:] = [n for n in dirnames if n != RUNS_DIR]
        for n in names:
            if n == "lmsieve.log" and dirpath == str(out):
                continue
            p = os.path.join(dirpath, n)
            got[os.path.relpath(p, out)] = open(p, "rb").read()
    return got


_CLEAN: dict = {}


def clean_run(files, method) -> dict[str, bytes]:
    """An uninterrupted run's output (once per method)."""
    if method not in _CLEAN:
        out = files / f"clean-{method}"
        assert main(select_args(files, method, out)) == 0
        _CLEAN[method] = output_bytes(out)
        assert {"manifest.json", "scores.parquet", "selected-00000-of-00001.parquet"} == set(_CLEAN[method])
    return _CLEAN[method]


@pytest.fixture
def calls(monkeypatch):
    """Counts of fit / one-pass fit+score / batch scoring / sampling calls."""
    n = {"fit": 0, "fit_score": 0, "score": 0, "sample": 0}

    def counting(key, fn):
        def wrapper(*a, **kw):
            n[key] += 1
            return fn(*a, **kw)
        return wrapper

    for cls in (DSIR, ZipFit):
        monkeypatch.setattr(cls, "fit", counting("fit", cls.fit))
        monkeypatch.setattr(cls, "score_and_mask", counting("score", cls.score_and_mask))
    monkeypatch.setattr(DSIR, "fit_score", counting("fit_score", DSIR.fit_score))
    monkeypatch.setattr(select_steps, "run_selection", counting("sample", select_steps.run_selection))
    return n


def kill_inside(monkeypatch, point: str, kill) -> None:
    """Call ``kill()`` inside step ``point`` once its artifacts are written, before it is recorded
    (for "write": when the output files are in the temporary directory, before the renames)."""
    if point == "write":
        monkeypatch.setattr(RunOutput, "commit", lambda self, manifest: kill())
        return
    orig = RunDir.step

    @contextmanager
    def step(self, name, info=None):
        with orig(self, name, info) as d:
            yield d
            if name == point:
                assert os.listdir(d), "the step wrote nothing before the kill"
                kill()

    monkeypatch.setattr(RunDir, "step", step)


def run_dir_of(out):
    (key,) = os.listdir(out / RUNS_DIR)
    return out / RUNS_DIR / key


@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("method", ["dsir", "zipfit"])
def test_killed_select_resumes_byte_identical(files, method, point, tmp_path, monkeypatch, calls):
    clean = clean_run(files, method)
    out = tmp_path / "out"

    def die():
        raise Killed(point)

    with monkeypatch.context() as m:
        kill_inside(m, point, die)
        with pytest.raises(Killed):
            main(select_args(files, method, out))
    # nothing under a final name, no temporary left; the steps before the kill are recorded
    assert output_bytes(out) == {}
    rd = run_dir_of(out)
    done = KILL_POINTS[:KILL_POINTS.index(point)]
    assert sorted(p for p in os.listdir(rd) if (rd / p / "step.json").exists()) == sorted(done)
    assert sorted(os.listdir(rd)) == sorted(done + ["config.json"])

    for k in calls:
        calls[k] = 0
    assert main(select_args(files, method, out)) == 0
    assert output_bytes(out) == clean
    fitted = calls["fit"] + calls["fit_score"]
    assert fitted == (1 if point == "fit" else 0)
    assert (calls["score"] + calls["fit_score"] > 0) == (point in ("fit", "score"))
    assert calls["sample"] == (1 if point in ("fit", "score", "sample") else 0)

    if point != "write":
        return
    # a third run redoes nothing and rewrites the same bytes
    for k in calls:
        calls[k] = 0
    assert main(select_args(files, method, out)) == 0
    assert calls == {"fit": 0, "fit_score": 0, "score": 0, "sample": 0}
    assert output_bytes(out) == clean


SIGKILL_SCRIPT = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import test_resume
from lmsieve.cli.main import main

class MP:  # a minimal monkeypatch: this process dies anyway
    def setattr(self, obj, name, value):
        setattr(obj, name, value)

test_resume.kill_inside(MP(), sys.argv[1], lambda: os.kill(os.getpid(), signal.SIGKILL))
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("point", ["score", "write"])
def test_sigkilled_select_resumes(files, point, tmp_path, calls):
    clean = clean_run(files, "zipfit")
    out = tmp_path / "out"
    script = SIGKILL_SCRIPT.format(tests=os.path.dirname(__file__))
    proc = subprocess.run([sys.executable, "-c", script, point, *select_args(files, "zipfit", out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # the killed process left its temporary files, but nothing under a final name
    rd = run_dir_of(out)
    if point == "write":
        assert [p for p in os.listdir(out) if p.startswith(".tmp-")] and not (out / "manifest.json").exists()
        assert not [p for p in os.listdir(out) if not p.startswith(".") and p != "lmsieve.log"]
    else:
        assert [p for p in os.listdir(rd) if p.startswith("score.tmp-")] and not (rd / "score").exists()
    assert (rd / "fit" / "step.json").exists()

    assert main(select_args(files, "zipfit", out)) == 0
    assert output_bytes(out) == clean  # stale temporaries removed too
    assert not [p for p in os.listdir(rd) if ".tmp-" in p]
    assert calls["fit"] == 0 and (calls["score"] > 0) == (point == "score")


def test_config_keys_the_run_dir_and_no_resume_recomputes(files, tmp_path, calls):
    out = tmp_path / "out"
    assert main(select_args(files, "zipfit", out)) == 0
    (first,) = os.listdir(out / RUNS_DIR)
    # another seed is another configuration: another run dir, everything computed again
    calls.update(fit=0, score=0, sample=0)
    assert main(select_args(files, "zipfit", out, seed=4)) == 0
    assert calls["fit"] == 1 and calls["score"] > 0
    (second,) = os.listdir(out / RUNS_DIR)  # the replaced run's directory was pruned after the commit
    assert second != first
    # --no-resume recomputes and records afresh
    calls.update(fit=0, score=0, sample=0)
    assert main(select_args(files, "zipfit", out, "--no-resume", seed=4)) == 0
    assert calls["fit"] == 1 and calls["score"] > 0 and calls["sample"] == 1
    assert os.listdir(out / RUNS_DIR) == [second]


def test_config_hash_is_stable_and_sensitive():
    a = {"method": "dsir", "params": {"num_buckets": 10000, "ngrams": 2}, "seed": 0, "pool": [["ab" * 32, 10]]}
    b = {"pool": [["ab" * 32, 10]], "seed": np.int64(0), "params": {"ngrams": 2, "num_buckets": 10000},
         "method": "dsir"}
    assert config_hash(a) == config_hash(b)  # key order and numpy scalars do not matter
    # golden value: sha256 of the canonical JSON, so the key survives process and machine changes
    canon = json.dumps(a, sort_keys=True, separators=(",", ":"))
    assert config_hash(a) == hashlib.sha256(canon.encode()).hexdigest()[:16]
    assert config_hash({**a, "seed": 1}) != config_hash(a)
    assert config_hash({**a, "pool": [["cd" * 32, 10]]}) != config_hash(a)

