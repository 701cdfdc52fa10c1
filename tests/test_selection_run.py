"""The selection run belongs to the library (issue #21).

* ``lmsieve.select(..., out=DIR)`` and ``lmsieve select --out DIR`` write byte-identical
  directories (every file, the run records under ``.lmsieve-runs`` included; only the run log,
  whose lines carry times, is left out); ``lmsieve.score(out=FILE)`` = ``lmsieve score``;
* an API run killed inside a step resumes through the API, skipping the finished steps, and writes
  the bytes of an uninterrupted run;
* no module under ``lmsieve/cli/`` imports the output, run-record or manifest modules, or opens a
  file for writing: the commands parse arguments and call the library;
* the in-process manifest and the Beam selection job's manifest of the same selection have the
  same keys (the runner's own settings apart, under ``runner``) and the same counts.
"""
import ast
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_resume import Killed, calls, kill_inside, output_bytes  # noqa: F401  (calls: a fixture)

import lmsieve
from lmsieve.data import sample_path
from lmsieve.cli.main import main
from lmsieve.io.runs import RUNS_DIR

CLI_DIR = Path(lmsieve.__file__).parent / "cli"


def tree_bytes(out) -> dict[str, bytes]:
    """Every file under ``out`` (run records included), except the top-level run log."""
    got = {}
    for dirpath, _, names in os.walk(out):
        for n in names:
            p = os.path.join(dirpath, n)
            if os.path.relpath(p, out) != "lmsieve.log":
                got[os.path.relpath(p, out)] = open(p, "rb").read()
    return got


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("selection_run")
    pool = pq.read_table(sample_path("pool.parquet")).slice(0, 240)
    # two bad rows (null text, repeated id) for the quarantine path
    bad = pa.table({"id": ["bad-null", pool.column("id")[0].as_py()], "text": [None, "again"],
                    "domain": ["legal", "legal"], "source": ["x", "x"]}, schema=pool.schema)
    pq.write_table(pool.slice(0, 130), d / "pool-0.parquet")
    pq.write_table(pa.concat_tables([pool.slice(130), bad]), d / "pool-1.parquet")
    pq.write_table(pq.read_table(sample_path("target_code_python.parquet")).slice(0, 12), d / "target.parquet")
    return d


def cli_select(d, out, method, *extra):
    return main(["select", "--method", method, "--target", str(d / "target.parquet"),
                 "--pool", str(d / "pool-0.parquet"), str(d / "pool-1.parquet"), "--keep", "25", "--seed", "5",
                 "--on-invalid", "quarantine", "--out", str(out), "--no-progress", *extra])


def api_select(d, out, method, **kw):
    return lmsieve.select([d / "pool-0.parquet", d / "pool-1.parquet"], method, d / "target.parquet", keep=25,
                          seed=5, on_invalid="quarantine", out=str(out), **kw)


@pytest.mark.parametrize("method", ["dsir", "zipfit"])
def test_api_and_cli_write_byte_identical_directories(files, tmp_path, method):
    assert cli_select(files, tmp_path / "cli", method) == 0
    picked = api_select(files, tmp_path / "api", method)
    cli, api = tree_bytes(tmp_path / "cli"), tree_bytes(tmp_path / "api")
    assert {"manifest.json", "scores.parquet", "quarantine.parquet", "selected-00000-of-00001.parquet"} <= set(cli)
    assert any(k.startswith(RUNS_DIR + os.sep) for k in cli)  # the resume records are compared too
    assert sorted(cli) == sorted(api)
    assert {k for k in cli if cli[k] != api[k]} == set()
    m = json.loads(cli["manifest.json"])
    assert m["counts"]["quarantined"] == 2 and m["counts"]["selected"] == 25 == picked.num_rows
    assert m["runner"] == {"engine": "in-process"} and m["command"] == "select"
    assert picked.column("id").to_pylist() == pq.read_table(tmp_path / "api" / "selected-00000-of-00001.parquet") \
        .column("id").to_pylist()
    # without out the API selects the same documents and writes nothing
    again = lmsieve.select([files / "pool-0.parquet", files / "pool-1.parquet"], method, files / "target.parquet",
                           keep=25, seed=5, on_invalid="quarantine")
    assert again.equals(picked)


def test_api_score_file_equals_cli_score_file(files, tmp_path):
    args = ["score", "--method", "dsir", "--target", str(files / "target.parquet"), "--pool",
            str(files / "pool-0.parquet"), str(files / "pool-1.parquet"), "--on-invalid", "quarantine",
            "--no-progress", "--out", str(tmp_path / "cli.parquet")]
    assert main(args) == 0
    s = lmsieve.score([files / "pool-0.parquet", files / "pool-1.parquet"], "dsir", files / "target.parquet",
                      on_invalid="quarantine", out=str(tmp_path / "api.parquet"))
    for name in ("{}.parquet", "{}.quarantine.parquet"):
        a, b = tmp_path / name.format("cli"), tmp_path / name.format("api")
        assert a.read_bytes() == b.read_bytes()
    t = pq.read_table(tmp_path / "api.parquet")
    assert np.array_equal(s[~np.isnan(s)], t.column("score").to_numpy()) and len(s) == t.num_rows + 2


@pytest.mark.parametrize("method", ["zipfit", "dsir"])
def test_api_run_killed_after_fit_resumes_through_the_api(files, tmp_path, monkeypatch, calls, method):
    api_select(files, tmp_path / "clean", method)
    clean = output_bytes(tmp_path / "clean")
    out = tmp_path / "out"

    def die():
        raise Killed("score")

    with monkeypatch.context() as m:
        kill_inside(m, "score", die)  # the fit step is recorded, the kill comes inside scoring
        with pytest.raises(Killed):
            api_select(files, out, method)
    assert output_bytes(out) == {}
    for k in calls:
        calls[k] = 0
    api_select(files, out, method)
    assert calls["fit"] + calls["fit_score"] == 0  # the fit step was skipped
    assert calls["score"] > 0 and calls["sample"] == 1
    assert output_bytes(out) == clean


FORBIDDEN = {"lmsieve.io.output", "lmsieve.io.runs", "lmsieve.schemas.manifest"}


def _imports(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _write_opens(tree: ast.AST) -> list[int]:
    """Lines of ``open(..., "w"/"a"/"x")`` calls."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "open":
            modes = [a for a in node.args[1:2]] + [k.value for k in node.keywords if k.arg == "mode"]
            if any(isinstance(m, ast.Constant) and isinstance(m.value, str) and set(m.value) & set("wax")
                   for m in modes):
                lines.append(node.lineno)
    return lines


def test_no_cli_module_writes_outputs_itself():
    modules = sorted(CLI_DIR.glob("*.py"))
    assert len(modules) > 15
    problems = []
    for path in modules:
        tree = ast.parse(path.read_text(), str(path))
        imported = _imports(tree)
        bad = sorted(m for m in imported if m in FORBIDDEN or any(m.startswith(f + ".") for f in FORBIDDEN))
        bad += sorted(m for m in imported if m in ("lmsieve.io.parquet.write_table", "pyarrow.parquet",
                                                    "lmsieve.io.output.RunOutput"))
        problems += [f"{path.name}: imports {m}" for m in bad]
        problems += [f"{path.name}:{n}: opens a file for writing" for n in _write_opens(tree)]
    assert problems == []


def test_the_check_catches_a_writing_command():
    """The scan above can fail: a module like the old select command is caught."""
    src = ("def run(args):\n    from lmsieve.io.output import RunOutput\n    from lmsieve.schemas.manifest import "
           "build_manifest\n    with open(args.json, 'w') as fh:\n        pass\n")
    tree = ast.parse(src)
    assert FORBIDDEN & _imports(tree) == {"lmsieve.io.output", "lmsieve.schemas.manifest"}
    assert _write_opens(tree) == [4]


def test_api_and_beam_manifests_have_the_same_keys_and_counts(files, tmp_path):
    from lmsieve.pipelines.features import NgramFeature
    from lmsieve.pipelines.features_job import run_features_job
    from lmsieve.pipelines.options import make_options
    from lmsieve.pipelines.selection_job import SelectionConfig, run_selection_job
    from lmsieve.sampling.select import Budget

    pool = pq.read_table(sample_path("pool.parquet")).slice(0, 300)
    (tmp_path / "pool").mkdir()
    pq.write_table(pool, tmp_path / "pool" / "part-0.parquet", row_group_size=100)
    target = str(files / "target.parquet")
    opts = make_options(["--runner=FnApiRunner"])
    run_features_job(str(tmp_path / "pool"), str(tmp_path / "feat"), [NgramFeature()], options=opts, progress_secs=0)
    for i, (budget, keep) in enumerate(((Budget(k=30), 30), (Budget(fraction=0.2), 0.2))):
        beam_out, api_out = tmp_path / f"beam{i}", tmp_path / f"api{i}"
        bm = run_selection_job(str(tmp_path / "pool"), str(tmp_path / "feat"), [target], str(beam_out),
                               SelectionConfig(method="dsir", budget=budget, seed=3, ranking="topk"), options=opts,
                               progress_secs=0)
        lmsieve.select(str(tmp_path / "pool" / "part-0.parquet"), "dsir", target, keep=keep, seed=3, ranking="topk",
                       out=str(api_out))
        am = json.loads((api_out / "manifest.json").read_text())
        bm = json.loads((beam_out / "manifest.json").read_text())

        def keys(d, p=""):
            out = set()
            if isinstance(d, dict):
                for k, v in d.items():
                    if p + "/" + k != "/runner":
                        out |= {p + "/" + k} | keys(v, p + "/" + k)
            elif isinstance(d, list):
                for v in d:
                    out |= keys(v, p + "[]")
            return out

        assert keys(am) == keys(bm)
        assert am["counts"] == bm["counts"] and am["counts"]["selected"] > 0
        assert am["counts"]["per_domain"]["selected"]  # the sample carries domains
        assert am["selection"] == bm["selection"] and am["command"] == bm["command"] == "select"
        assert am["inputs"]["target"] == bm["inputs"]["target"]  # the same file entries (sha256 included)
        assert bm["runner"]["engine"] == "apache-beam" and am["runner"] == {"engine": "in-process"}
        assert [e["rows"] for e in am["inputs"]["pool"]] == [e["rows"] for e in bm["inputs"]["pool"]] == [300]
