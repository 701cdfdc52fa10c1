"""Render the Dataflow job request of a job spec without submitting it (no credentials, no data).

``lmsieve run SPEC --dataflow-job-file FILE`` builds the spec's pipelines exactly as a run would
and hands them to Beam's own ``DataflowRunner`` with ``--dry_run``: the runner translates the
pipeline (Dataflow's overrides, container environments) into ``apiclient.Job`` and returns
without contacting the service. The job's environment (worker pool, machine type, container
image, service options such as ``worker_accelerator``, pipeline options) is then described by
Beam's own ``apiclient.Environment`` as ``create_job_description`` does, minus the staging of
files (no package is staged: workers use the image); the request's JSON (``Job.json()``, what
Beam's ``--dataflow_job_file`` writes) goes to FILE, and the translated pipeline proto that
submission would stage as ``pipeline.pb`` goes to FILE + ``.pipeline.pb``. Nothing is read from the pool: the job graph does not
depend on it (task lists are files in the temp location, written at submit time), so the
rendered graph is the submitted one up to the task-list contents and the quantile sketch size.

A spec with both jobs renders two requests: FILE (features) and FILE with ``.selection`` before
its extension. Needs the ``gcp`` extra (``pip install -e .[gcp]``, see requirements-gcp.lock).
"""
from __future__ import annotations

import os

import apache_beam as beam
from lmsieve.pipelines import fileio
from lmsieve.schemas.errors import ConfigError


def _dry_options(spec, beam_flags: list[str]):
    from lmsieve.pipelines.options import make_options, runner_name

    opts = make_options(spec.beam_flags() + list(beam_flags) + ["--dry_run=True"])
    if runner_name(opts) != "DataflowRunner":
        raise ConfigError(f"{spec.source}: beam.runner: --dataflow-job-file renders a DataflowRunner job "
                          f"(got {runner_name(opts)!r})")
    try:
        import apitools  # noqa: F401 - the Dataflow client, from apache-beam[gcp]
    except ImportError:
        raise ConfigError("--dataflow-job-file needs the gcp extra: pip install -e .[gcp] "
                          "(pinned: requirements-gcp.lock)") from None
    return opts


def _features_graph(p, spec, tmp: str) -> None:
    from lmsieve.pipelines.features_job import FeaturesPlan, build_features_pipeline
    from lmsieve.pipelines.features import DOCS, DocsFeature

    feats = {DOCS: DocsFeature(), **{f.name: f for f in spec.table_features(fit=False)}}
    handlers = {h.name: h for h in spec.model_handlers()}
    plan = FeaturesPlan([], spec.features_dir, feats, handlers, table_tasks=[None],
                        model_tasks={n: [None] for n in handlers}, assemble_tasks={n: [None] for n in handlers})
    build_features_pipeline(p, plan, 0, None, spec.on_invalid, spec.max_doc_bytes, tmp_dir=tmp, dry=True)


def _selection_graph(p, spec, tmp: str) -> None:
    from lmsieve.pipelines.selection_job import SelectionPlan, build_selection_pipeline, make_selector

    cfg = spec.selection_config()
    sel = make_selector(cfg)
    fam = "dsir_ngrams" if cfg.method == "dsir" else cfg.method
    plan = SelectionPlan([], [], [], sel, ("docs", fam), list(spec.target), 0)
    build_selection_pipeline(p, plan, cfg, spec.selection["out"], fileio.join(tmp, "selection"), {}, 0, dry=True)


def render_job_files(spec, beam_flags: list[str], path: str, stage: str = "all") -> list[str]:
    """Write the Dataflow job request(s) of ``spec`` as JSON; returns the files written."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    opts = _dry_options(spec, beam_flags)
    tmp = fileio.join(opts.view_as(GoogleCloudOptions).temp_location, "lmsieve-<job>")
    jobs = []
    if spec.features and stage in ("all", "features"):
        jobs.append(("features", _features_graph))
    if spec.selection and stage in ("all", "selection"):
        jobs.append(("selection", _selection_graph))
    if not jobs:
        raise ConfigError(f"{spec.source}: {stage}: nothing to render")
    written = []
    for i, (name, build) in enumerate(jobs):
        p = beam.Pipeline(options=opts)
        build(p, spec, tmp)
        result = p.run()  # --dry_run: translated, not submitted
        job = result.job
        describe(job)
        out = path if i == 0 else "{0}.{2}{1}".format(*os.path.splitext(path), name)
        fileio.write_text(out, job.json())
        with fileio.open_write(out + ".pipeline.pb") as f:
            f.write(job.proto_pipeline.SerializeToString())
        written.append(out)
    return written


def describe(job) -> None:
    """Fill ``job.proto.environment`` like ``DataflowApplicationClient.create_job_description``,
    without staging anything."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.runners.dataflow.internal import apiclient
    from apache_beam.runners.internal import names

    overrides = apiclient.DataflowApplicationClient._get_sdk_image_overrides(None, job.options)
    apiclient.DataflowApplicationClient._apply_sdk_environment_overrides(job.proto_pipeline, overrides, job.options)
    staging = job.google_cloud_options.staging_location
    job.proto.environment = apiclient.Environment(
        packages=[], options=job.options, environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url=FileSystems.join(staging, names.STAGED_PIPELINE_FILENAME),
        proto_pipeline=job.proto_pipeline).proto


def pickled_payloads(proto_pipeline) -> list[bytes]:
    """The decompressed pickles inside a pipeline proto (DoFns, CombineFns, sources): what a test
    searches for launcher paths (a lambda pickled by value carries its source file's path)."""
    import base64
    import bz2
    import zlib

    from apache_beam.portability.api import beam_runner_api_pb2

    out = []
    for t in proto_pipeline.components.transforms.values():
        payloads = [t.spec.payload]
        try:
            pd = beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload)
            payloads.append(pd.do_fn.payload)
        except Exception:  # noqa: BLE001 - not a ParDo
            pass
        try:
            cp = beam_runner_api_pb2.CombinePayload.FromString(t.spec.payload)
            payloads.append(cp.combine_fn.payload)
        except Exception:  # noqa: BLE001 - not a Combine
            pass
        for b in payloads:
            out.append(b)
            for dec in (lambda x: zlib.decompress(base64.b64decode(x)), lambda x: bz2.decompress(base64.b64decode(x)),
                        zlib.decompress):
                try:
                    out.append(dec(b))
                    break
                except Exception:  # noqa: BLE001 - not that encoding
                    pass
    return out


__all__ = ["pickled_payloads", "render_job_files"]
