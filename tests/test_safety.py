"""Safety (issue #9): nothing from inputs or artifacts can run code, and job specs cannot write
outside their run directory through ``..``."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import numpy as np
import pytest

from lmsieve.pipelines.jobspec import check_no_escape, validate_spec
from lmsieve.schemas.errors import ConfigError

PKG = Path(__file__).resolve().parents[1] / "lmsieve"


def _spec(**over) -> dict:
    raw = {"inputs": {"pool": "sample:pool.parquet", "target": "sample:target_code_python.parquet"},
           "features": {"out": "out/f", "compute": ["dsir_ngrams"]},
           "selection": {"method": "dsir", "out": "out/s", "keep": 5},
           "beam": {"runner": "FnApiRunner"}}
    for key, value in over.items():
        table, k = key.split("__")
        raw[table][k] = value
    return raw


@pytest.mark.parametrize("over,key", [
    ({"inputs__pool": "../elsewhere/pool.parquet"}, "inputs.pool"),
    ({"inputs__pool": ["data/a.parquet", "data/../../b.parquet"]}, "inputs.pool[1]"),
    ({"inputs__target": "/work/run/../../etc/t.parquet"}, "inputs.target"),
    ({"features__out": "out/../../features"}, "features.out"),
    ({"selection__out": ".."}, "selection.out"),
    ({"selection__out": "gs://bucket/run/../other"}, "selection.out"),
])
def test_job_spec_paths_cannot_escape_with_dotdot(over, key):
    with pytest.raises(ConfigError) as ei:
        validate_spec(_spec(**over), "job.toml")
    assert str(ei.value).startswith(f"job.toml: {key}: ") and "escapes the run directory through '..'" in str(ei.value)


def test_paths_that_stay_inside_are_fine():
    for p in ("out/../out2", "a/./b", "data/pool/*.parquet", "/abs/dir/out", "gs://bucket/run/out", "x..y/z"):
        check_no_escape("k", p)
    spec = validate_spec(_spec(selection__out="out/sel/../sel2"), "job.toml")
    assert spec.selection["out"] == "out/sel/../sel2"


def test_job_spec_on_invalid_is_validated():
    with pytest.raises(ConfigError, match="inputs.on_invalid: must be one of error, quarantine, got 'skip'"):
        validate_spec(_spec(inputs__on_invalid="skip"), "job.toml")
    with pytest.raises(ConfigError, match="inputs.max_doc_bytes: must be >= 1"):
        validate_spec(_spec(inputs__max_doc_bytes=0), "job.toml")
    spec = validate_spec(_spec(inputs__on_invalid="quarantine", inputs__max_doc_bytes=1000), "job.toml")
    assert (spec.on_invalid, spec.max_doc_bytes) == ("quarantine", 1000)
    assert spec.selection_config().on_invalid == "quarantine"


def test_selector_state_with_a_pickle_is_refused(tmp_path):
    from lmsieve.selectors.base import STATE_ARRAYS, Selector
    from lmsieve.selectors.zipfit import ZipFit

    d = ZipFit().fit(["alpha beta", "gamma delta"]).save(tmp_path / "zf")
    assert isinstance(Selector.load(d), ZipFit)
    np.savez(os.path.join(d, STATE_ARRAYS), evil=np.array([{"__reduce__": "os.system"}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        Selector.load(d)


def _unsafe_calls(tree: ast.AST) -> list[str]:
    """Calls that can run code from data: pickle/dill/joblib/marshal loads, yaml.load, eval/exec,
    torch.load without weights_only=True, np.load without allow_pickle=False, trust_remote_code=True."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        kw = {k.arg: k.value for k in node.keywords}

        def const(k):  # the keyword's constant value; None when absent or not a constant
            return kw[k].value if isinstance(kw.get(k), ast.Constant) else None

        if isinstance(f, ast.Name) and name in ("eval", "exec"):
            out.append(name)
        elif owner in ("pickle", "dill", "joblib", "marshal", "cloudpickle") and name in ("load", "loads"):
            out.append(f"{owner}.{name}")
        elif owner == "yaml" and name == "load":
            out.append("yaml.load")
        elif owner == "torch" and name == "load" and const("weights_only") is not True:
            out.append("torch.load without weights_only=True")
        elif owner in ("np", "numpy") and name == "load" and const("allow_pickle") is not False:
            out.append("np.load without allow_pickle=False")
        if const("trust_remote_code") is True:
            out.append("trust_remote_code=True")
    return out


def test_no_code_loading_from_data_in_the_package():
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        bad = _unsafe_calls(ast.parse(path.read_text(), str(path)))
        if bad:
            found[str(path.relative_to(PKG))] = bad
    assert found == {}


def test_the_scan_catches_what_it_looks_for():
    src = ("import pickle, torch, numpy as np\npickle.loads(b)\ntorch.load(f)\nnp.load(f)\neval('1')\n"
           "torch.load(f, weights_only=True)\nnp.load(f, allow_pickle=False)\nm.eval()\nX(trust_remote_code=True)\n")
    assert sorted(_unsafe_calls(ast.parse(src))) == sorted([
        "pickle.loads", "torch.load without weights_only=True", "np.load without allow_pickle=False", "eval",
        "trust_remote_code=True"])


@pytest.mark.slow  # ~15 s on the 2-core machine (sentence-transformers import and model build)
def test_embedding_model_without_safetensors_is_refused(tmp_path):
    """A local model directory with only a pickled ``pytorch_model.bin`` is never unpickled."""
    import json

    torch = pytest.importorskip("torch")
    from lmsieve.features.embeddings import _load

    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
                                               "num_attention_heads": 1, "intermediate_size": 8, "vocab_size": 16}))
    torch.save({"x": torch.zeros(1)}, d / "pytorch_model.bin")
    with pytest.raises(OSError, match="model.safetensors"):
        _load(str(d), "cpu", None)
