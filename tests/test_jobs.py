"""Job specs: every spec in jobs/ validates, a broken one names the key; the worker image matches
pyproject; `lmsieve run` runs the local demo job and selects what `lmsieve select` selects."""
import copy
import glob
import re
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lmsieve.pipelines.jobspec import load_spec, validate_spec
from lmsieve.schemas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
# jobs/mix_*.toml are mixture specs for `lmsieve mix` (tests/test_mix_cli.py), not Beam job specs
JOBS = sorted(p for p in glob.glob(str(REPO / "jobs" / "*.toml")) if not Path(p).name.startswith("mix_"))


def test_there_are_the_three_jobs():
    names = {Path(p).name for p in JOBS}
    assert {"local_demo.toml", "dataflow_cpu_selection.toml", "dataflow_gpu_features.toml"} <= names


@pytest.mark.parametrize("path", JOBS, ids=lambda p: Path(p).name)
def test_job_specs_validate(path):
    spec = load_spec(path)
    assert spec.pool and (spec.features or spec.selection)
    runner = spec.beam.get("runner")
    assert runner in ("FnApiRunner", "DataflowRunner")
    if runner == "DataflowRunner":
        assert all(p.startswith("gs://") for p in spec.pool)
        assert spec.beam.get("sdk_container_image")


def _demo() -> dict:
    with open(REPO / "jobs" / "local_demo.toml", "rb") as f:
        return tomllib.load(f)


def _gpu() -> dict:
    with open(REPO / "jobs" / "dataflow_gpu_features.toml", "rb") as f:
        return tomllib.load(f)


def _set(d: dict, dotted: str, value):
    d = copy.deepcopy(d)
    t = d
    keys = dotted.split(".")
    for k in keys[:-1]:
        t = t.setdefault(k, {})
    if value is _DEL:
        del t[keys[-1]]
    else:
        t[keys[-1]] = value
    return d


_DEL = object()


@pytest.mark.parametrize("base,key,value,named", [
    ("demo", "selection.keep_fraction", 1.5, "selection.keep_fraction"),
    ("demo", "selection.kep", 3, "selection.kep"),
    ("demo", "selection.keep", 10, "selection.keep|keep_fraction"),            # two budgets
    ("demo", "selection.ranking", "best", "selection.ranking"),
    ("demo", "selection.seed", "zero", "selection.seed"),
    ("demo", "selection.method", "nope", "selection.method"),
    ("demo", "selection.params.num_tokens_to_fit", "some", "selection.params"),
    ("demo", "selection.params.bogus", 1, "selection.params"),
    ("demo", "selection.params.num_buckets", 2000, "selection.params.num_buckets"),
    ("demo", "selection.quotas", {"math": {"keep_fraction": 2.0}}, "selection.quotas"),
    ("demo", "inputs.pool", _DEL, "inputs.pool"),
    ("demo", "features.compute", ["zipfit"], "features.compute"),
    ("demo", "features.compute", ["dsir"], "features.compute[0]"),
    ("demo", "features.dsir_ngrams.num_buckets", 0, "features.dsir_ngrams.num_buckets"),
    ("demo", "features.out", _DEL, "features.out"),
    ("demo", "beam.runner", "DirectRunner", "beam.runner"),
    ("demo", "beam.runner", "DataflowRunner", "beam.project"),
    ("gpu", "beam.temp_location", _DEL, "beam.temp_location"),
    ("gpu", "inputs.pool", "data/pool/", "inputs.pool"),
    ("gpu", "features.embeddings.dtype", "int8", "features.embeddings.dtype"),
    ("gpu", "features.embeddings.accelerator", "type:nvidia-l4;count:1", "features.embeddings.accelerator"),
    ("gpu", "features.zipfit", {"level": 0}, "features"),
])
def test_broken_spec_names_the_key(base, key, value, named):
    raw = _set(_demo() if base == "demo" else _gpu(), key, value)
    if key == "features.zipfit":
        raw["features"]["compute"].append("zipfit")
    with pytest.raises(ConfigError) as err:
        validate_spec(raw, "broken.toml")
    msg = str(err.value)
    assert msg.startswith("broken.toml: ") and named in msg, msg


def test_overrides_and_toml_errors(tmp_path):
    spec = load_spec(REPO / "jobs" / "local_demo.toml", overrides=["selection.seed=3", "selection.exact=false"])
    cfg = spec.selection_config()
    assert cfg.seed == 3 and cfg.exact is False and cfg.budget.fraction == 0.1
    bad = tmp_path / "bad.toml"
    bad.write_text("[selection\nmethod = 'dsir'\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_spec(bad)


def _pins() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        proj = tomllib.load(f)["project"]
    pins = dict(re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", d).groups() for d in proj["dependencies"])
    py = re.search(r">=\s*3\.(\d+)", proj["requires-python"]).group(1)
    return {"beam": pins["apache-beam"], "torch": pins["torch"], "python": f"3.{py}"}


def test_dockerfile_matches_pyproject():
    text = (REPO / "Dockerfile").read_text()
    pins = _pins()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    beam_images = [f for f in froms if f.startswith("apache/beam_python")]
    assert beam_images, "the worker image must start from Beam's SDK image"
    for img in beam_images + re.findall(r"--from=(apache/beam_python\S+)", text):
        m = re.fullmatch(r"apache/beam_python(\d+\.\d+)_sdk:(\S+)", img)
        assert m and m.group(1) == pins["python"] and m.group(2) == pins["beam"], img
    assert f'apache_beam.__version__ == "{pins["beam"]}"' in text
    assert re.findall(r"torch==(\S+)", text) and set(re.findall(r"torch==(\S+)", text)) == {pins["torch"]}
    assert "HF_HUB_OFFLINE=1" in text and 'ENTRYPOINT ["/opt/apache/beam/boot"]' in text
    assert re.search(r"^FROM .* AS gpu", text, flags=re.M) and re.search(r"^FROM .* AS cpu", text, flags=re.M)


def test_lmsieve_run_local_demo_matches_lmsieve_select(tmp_path, capsys):
    from lmsieve.cli.main import main

    out = tmp_path / "beam"
    rc = main(["run", str(REPO / "jobs" / "local_demo.toml"), "--no-progress",
               "--set", f'features.out="{out / "features"}"', "--set", f'selection.out="{out / "selected"}"',
               "--runner", "FnApiRunner"])
    assert rc == 0
    assert main(["select", "--method", "dsir", "--pool", str(_sample("pool.parquet")),
                 "--target", str(_sample("target_code_python.parquet")), "--keep-fraction", "0.1",
                 "--out", str(tmp_path / "api"), "--no-progress"]) == 0
    ids = lambda d: [i for f in sorted(d.glob("selected-*.parquet")) for i in pq.read_table(f).column("id").to_pylist()]  # noqa: E731
    assert ids(out / "selected") == ids(tmp_path / "api") and len(ids(tmp_path / "api")) == 121
    assert (out / "selected" / "manifest.json").exists()
    assert main(["run", "--check", str(REPO / "jobs" / "dataflow_gpu_features.toml")]) == 0
    assert main(["run", str(REPO / "jobs" / "local_demo.toml"), "--set", "selection.keep_fraction=3.0"]) == 2
    assert "selection.keep_fraction" in capsys.readouterr().err


def _sample(name: str) -> Path:
    from lmsieve.data import sample_path

    return Path(sample_path(name))


def test_dataflow_gpu_job_file_renders_offline(tmp_path):
    """`lmsieve run --dataflow-job-file` renders the GPU features job (Beam's DataflowRunner
    --dry_run, no credentials): worker image, accelerator, machine type, and no launcher path
    (repository, model directory, working directory) anywhere in the request or the pipeline proto,
    including inside the pickled DoFns."""
    pytest.importorskip("apitools", reason="the Dataflow client comes with the gcp extra: "
                                           "pip install -r requirements-gcp.lock (see docs/beam.md)")
    import json
    import os

    from apache_beam.portability.api import beam_runner_api_pb2

    from lmsieve.cli.main import main
    from lmsieve.pipelines.dataflow import pickled_payloads
    from lmsieve.pipelines.inference import packaged_model_path

    out = tmp_path / "job.json"
    assert main(["run", str(REPO / "jobs" / "dataflow_gpu_features.toml"), "--dataflow-job-file", str(out)]) == 0
    job = json.loads(out.read_text())
    env = job["environment"]
    pool = env["workerPools"][0]
    spec = load_spec(REPO / "jobs" / "dataflow_gpu_features.toml")
    image = spec.beam["sdk_container_image"]
    assert pool["machineType"] == "g2-standard-8"
    assert pool["workerHarnessContainerImage"] == image
    assert [c["containerImage"] for c in pool["sdkHarnessContainerImages"]] == [image]
    assert env["serviceOptions"] == ["worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"]
    assert env["tempStoragePrefix"].startswith("storage.googleapis.com/my-bucket/tmp")
    proto = beam_runner_api_pb2.Pipeline.FromString((tmp_path / "job.json.pipeline.pb").read_bytes())
    names = {t.unique_name for t in proto.components.transforms.values()}
    assert {"embeddingsInfer/RunInference/BeamML_RunInference", "ComputeFeatures"} <= names, sorted(names)[:20]
    blobs = [out.read_bytes(), (tmp_path / "job.json.pipeline.pb").read_bytes()] + pickled_payloads(proto)
    assert any(b"SentenceEmbeddingHandler" in b for b in blobs)  # the decoder sees inside the pickles
    launcher = {str(REPO), str(packaged_model_path()), os.getcwd(), str(tmp_path)}
    for b in blobs:
        for path in launcher:
            assert path.encode() not in b, path


def test_dockerfile_layers_and_flex_template():
    """Dependency layers before the code in every image; the CUDA check asserts; the Flex Template
    metadata declares exactly lmsieve's own options (plus the worker image)."""
    import json

    from lmsieve.pipelines.options import LmsieveOptions

    text = (REPO / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    by_name = {s.split("\n", 1)[0].split(" AS ")[-1].strip(): s for s in stages}
    assert {"base", "gpu-deps", "gpu", "cpu-deps", "cpu", "launcher"} <= set(by_name)
    for name in ("gpu-deps", "cpu-deps"):  # dependency layers: no package code copied
        st = by_name[name]
        assert "requirements.lock" in st
        copied = re.findall(r"^COPY (.+?) /tmp/fetch/", st, flags=re.M)
        # only the few modules `lmsieve models fetch` needs, after the dependency layers (the offline
        # models are baked in; a code edit elsewhere rebuilds neither the dependencies nor the models)
        assert copied and all(c.split()[0].startswith(("lmsieve/__init__.py", "lmsieve/schemas", "lmsieve/models"))
                              for c in copied), copied
        assert st.index("requirements.lock") < st.index("COPY lmsieve")
        assert len(re.findall(r"^COPY lmsieve", st, flags=re.M)) == len(copied)
        assert "fetch('smollm2-135m')" in st and "fetch('lid176')" in st
    for name in ("gpu", "cpu", "launcher"):
        s = by_name[name]
        assert s.index("COPY lmsieve") > s.find("FROM"), name
        assert "-deps" in s.split("\n", 1)[0] and "pip install -r requirements.lock" not in s
    assert "assert torch.version.cuda is not None" in text and "check_cuda.py" in by_name["gpu-deps"]
    assert "check_cuda.py" in by_name["gpu"] and "check_cuda.py" not in by_name["cpu"]
    assert "requirements-gcp.lock" in by_name["launcher"] and "FLEX_TEMPLATE_PYTHON_PY_FILE" in by_name["launcher"]
    meta = json.loads((REPO / "jobs" / "flex_template_metadata.json").read_text())
    import argparse

    parser = argparse.ArgumentParser()
    LmsieveOptions._add_argparse_args(parser)
    own = {a.dest for a in parser._actions if a.dest != "help"}
    params = {p["name"] for p in meta["parameters"]}
    assert params - {"sdk_container_image"} == own
    lock = dict(l.split("==") for l in (REPO / "requirements.lock").read_text().split() if "==" in l)
    gcp = dict(l.split("==") for l in (REPO / "requirements-gcp.lock").read_text().split() if "==" in l)
    assert all(gcp[k] == v for k, v in lock.items()) and "google-apitools" in gcp  # the lock, plus the extra


def test_schema_is_printed_and_lm_features_take_portable_references(tmp_path, capsys):
    import json

    from lmsieve.cli.main import main

    assert main(["run", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    sel = schema["$defs"]["SelectionTable"]["properties"]
    kf = sel["keep_fraction"]["anyOf"][0]
    assert kf["exclusiveMinimum"] == 0 and kf["maximum"] == 1
    assert "description" in sel["num_quantiles"] and "inputs" in schema["required"]
    raw = _set(_demo(), "features.compute", ["dsir_ngrams", "proxy_loss"])
    raw = _set(raw, "features.proxy_loss", {"proxy": "smollm2-135m", "max_batch_size": 8, "options": {"window": 64}})
    spec = validate_spec(raw, "lm.toml")
    (h,) = spec.model_handlers()
    assert h.name == "proxy_loss" and h.factory.proxy.kind == "fetched" and h.max_batch_size == 8
    for key, value in (("features.proxy_loss.max_batch_size", 0), ("features.proxy_loss.bogus", 1),
                       ("beam.max_num_workers", {"a": 1})):
        with pytest.raises(ConfigError) as err:
            validate_spec(_set(raw, key, value), "lm.toml")
        assert str(err.value).startswith(f"lm.toml: {key}: "), str(err.value)
