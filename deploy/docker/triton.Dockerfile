# syntax=docker/dockerfile:1.7
# NVIDIA Triton Inference Server with our Python-backend models' dependencies.
#
# Build from the repository root:
#   docker build -f deploy/docker/triton.Dockerfile -t REGISTRY/recsys/triton:TAG .
#
# Why this is more than `pip install` on top of NVIDIA's image:
# * Triton 26.xx containers ship Ubuntu 24.04 with Python 3.12, but our package requires
#   Python 3.11 (pyproject `requires-python`). The Python backend runs models in a *stub*
#   process linked against one Python version, so we build the stub for Python 3.11 from the
#   python_backend branch matching the container (NVIDIA's documented way to use another
#   Python version) and put it in place of the shipped one.
# * numpy must stay <2 (the stub returns empty tensors with numpy 2): pinned by pyproject.
# * torch is a CUDA build matching the container's CUDA major (26.xx = CUDA 13 -> cu130).
# TRITON_VERSION 26.08 is the container whose server is 2.73, the tritonclient version pinned
# in pyproject.toml; bump TRITON_VERSION, PYTHON_BACKEND_TAG and TORCH_INDEX together.

ARG TRITON_VERSION=26.08
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# Python 3.11 from the official image (built on glibc 2.36, runs on Ubuntu 24.04's 2.39).
FROM ${PYTHON_IMAGE} AS python311

# ---------------------------------------------------------------------------------------------
FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3 AS builder
ARG PYTHON_BACKEND_TAG=r26.08
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu130
ARG GRPCIO_TOOLS_VERSION=1.81.0
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake git ca-certificates rapidjson-dev libarchive-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=python311 /usr/local /opt/python3.11
ENV PATH=/opt/python3.11/bin:$PATH LD_LIBRARY_PATH=/opt/python3.11/lib:$LD_LIBRARY_PATH
# The Python-backend stub for Python 3.11 (same branch as the container's backend).
RUN git clone --depth 1 --branch "${PYTHON_BACKEND_TAG}" \
      https://github.com/triton-inference-server/python_backend /tmp/python_backend \
 && cmake -S /tmp/python_backend -B /tmp/python_backend/build \
      -DTRITON_ENABLE_GPU=ON \
      -DTRITON_BACKEND_REPO_TAG="${PYTHON_BACKEND_TAG}" \
      -DTRITON_COMMON_REPO_TAG="${PYTHON_BACKEND_TAG}" \
      -DTRITON_CORE_REPO_TAG="${PYTHON_BACKEND_TAG}" \
      -DPython3_ROOT_DIR=/opt/python3.11 \
      -DPYTHON_EXECUTABLE=/opt/python3.11/bin/python3.11 \
      -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /tmp/python_backend/build --target triton-python-backend-stub -j"$(nproc)" \
 && install -m 0755 /tmp/python_backend/build/triton_python_backend_stub /opt/triton_python_backend_stub \
 && rm -rf /tmp/python_backend
# Model dependencies: CUDA torch first (pyproject's ==2.13.0 accepts 2.13.0+cu130), then ours.
WORKDIR /src
RUN python3.11 -m venv /opt/tools \
 && /opt/tools/bin/pip install "grpcio-tools==${GRPCIO_TOOLS_VERSION}" \
 && python3.11 -m venv /opt/recsys \
 && /opt/recsys/bin/pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
COPY protos ./protos
RUN mkdir -p build/proto \
 && /opt/tools/bin/python -m grpc_tools.protoc -I protos \
      --python_out=build/proto --pyi_out=build/proto --grpc_python_out=build/proto \
      protos/recsys/v1/recsys.proto \
 && touch build/proto/recsys/__init__.py build/proto/recsys/v1/__init__.py
COPY serving ./serving
RUN /opt/recsys/bin/pip install ".[triton]" \
 && /opt/recsys/bin/python -c "import numpy, torch; assert numpy.__version__ < '2', numpy.__version__" \
 && find /opt/recsys -name '__pycache__' -prune -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------
FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3 AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" recsys \
 && useradd --system --uid "${UID}" --gid recsys --home-dir /models --shell /usr/sbin/nologin recsys
COPY --from=python311 /usr/local /opt/python3.11
COPY --from=builder /opt/recsys /opt/recsys
COPY --from=builder /opt/triton_python_backend_stub \
     /opt/tritonserver/backends/python/triton_python_backend_stub
# The committed model templates (config.pbtxt + 1/model.py) at ./model_repository of the
# working directory, as in the repo: `recsys prepare-models` renders them into the runtime
# repository (the init container in Kubernetes).
WORKDIR /app
COPY model_repository ./model_repository
# serving.adapters.triton.repository currently looks for the templates next to the installed
# package (Path(__file__).parents[2] / "model_repository" = site-packages/model_repository).
COPY model_repository /opt/recsys/lib/python3.11/site-packages/model_repository
# The stub finds its interpreter through PATH and libpython through LD_LIBRARY_PATH
# (the venv's bin/ first, so the models import torch and `serving` from /opt/recsys).
ENV PATH=/opt/recsys/bin:/opt/python3.11/bin:$PATH \
    LD_LIBRARY_PATH=/opt/python3.11/lib:$LD_LIBRARY_PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
USER ${UID}:${UID}
EXPOSE 8000 8001 8002
# NVIDIA's entrypoint (/opt/nvidia/nvidia_entrypoint.sh) stays: it sets up the CUDA
# forward-compatibility libraries; the Kubernetes manifests call it explicitly too.
CMD ["tritonserver", "--model-repository=/models", "--http-port=8000", "--grpc-port=8001", \
     "--metrics-port=8002"]
