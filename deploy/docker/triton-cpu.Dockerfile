# syntax=docker/dockerfile:1.7
# Triton Inference Server for CPU nodes: the tritonserver binary and Python-backend stubs
# that ship in the nvidia-pytriton wheel (the same server `recsys up` runs), on a Python
# 3.11 base, with CPU torch. GPU nodes use triton.Dockerfile (NVIDIA's tritonserver image).
#
# Build from the repository root:
#   docker build -f deploy/docker/triton-cpu.Dockerfile -t REGISTRY/recsys/triton-cpu:TAG .
# (`make images` builds it with buildah on a local Debian 12 base: deploy/README.md.)
#
# The layout matches NVIDIA's image where the manifests depend on it: `tritonserver` on
# PATH with its backends in /opt/tritonserver/backends, /opt/nvidia/nvidia_entrypoint.sh
# (here a pass-through: there are no CUDA compatibility libraries to set up), the model
# templates in /app/model_repository, UID 10001.

# Any Debian-based Python 3.11 image with `python` and venv (glibc >= 2.35 for the wheel's
# binaries); `make images` passes a local Debian 12 base.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ARG GRPCIO_TOOLS_VERSION=1.81.0
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PYTRITON_VERSION=0.7.0
# Unset in production (PyPI); `make images` passes PIP_NO_INDEX=1 and PIP_FIND_LINKS=/wheels
# with a wheelhouse mounted there (deploy/podman/images.py). ARGs reach RUN as env vars.
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The server: unpacked from the wheel, never installed (its Python API is not used). The
# Python-backend stub must match the models' interpreter: the 3.11 one replaces the default.
RUN python -m venv /opt/tools \
 && /opt/tools/bin/pip install "grpcio-tools==${GRPCIO_TOOLS_VERSION}" \
 && /opt/tools/bin/pip download --no-deps --dest /tmp/pytriton "nvidia-pytriton==${PYTRITON_VERSION}" \
 && /opt/tools/bin/python -m zipfile -e /tmp/pytriton/nvidia_pytriton-*.whl /tmp/pytriton/wheel \
 && mv /tmp/pytriton/wheel/pytriton/tritonserver /opt/tritonserver \
 && mv /tmp/pytriton/wheel/nvidia_pytriton.libs /opt/tritonserver/lib \
 && install -m 0755 /opt/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub \
      /opt/tritonserver/backends/python/triton_python_backend_stub \
 && rm -rf /opt/tritonserver/python_backend_stubs /tmp/pytriton \
 && chmod 0755 /opt/tritonserver/bin/tritonserver \
 && python -m venv /opt/recsys \
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
 && /opt/recsys/bin/python -c "import numpy, torch; assert numpy.__version__ < '2', numpy.__version__; assert not torch.cuda.is_available()" \
 && find /opt/recsys -name '__pycache__' -prune -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" recsys \
 && useradd --system --uid "${UID}" --gid recsys --home-dir /models --shell /usr/sbin/nologin recsys \
 && mkdir -p /opt/nvidia /models /var/lib/recsys \
 && printf '#!/bin/sh\n# CPU image: nothing to set up (NVIDIA'"'"'s sets up CUDA compatibility libraries).\nexec "$@"\n' \
      > /opt/nvidia/nvidia_entrypoint.sh \
 && chmod 0755 /opt/nvidia/nvidia_entrypoint.sh \
 && chown recsys:recsys /models /var/lib/recsys
COPY --from=builder /opt/tritonserver /opt/tritonserver
COPY --from=builder /opt/recsys /opt/recsys
WORKDIR /app
COPY model_repository ./model_repository
# serving.adapters.triton.repository looks for the templates next to the installed package
# (Path(__file__).parents[2] / "model_repository" = site-packages/model_repository).
COPY model_repository /opt/recsys/lib/python3.11/site-packages/model_repository
# The stub finds its interpreter through PATH (the venv's bin/ first, so the models import
# torch and `serving` from /opt/recsys); the server's own libraries come from the wheel.
# One OpenMP thread per stub: the instances share the pod's CPUs.
ENV PATH=/opt/recsys/bin:/opt/tritonserver/bin:$PATH \
    LD_LIBRARY_PATH=/opt/tritonserver/lib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    OMP_NUM_THREADS=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
USER ${UID}:${UID}
EXPOSE 8000 8001 8002
ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh"]
CMD ["tritonserver", "--model-repository=/models", "--http-port=8000", "--grpc-port=8001", \
     "--metrics-port=8002"]
