# syntax=docker/dockerfile:1.7
# gRPC orchestrator (`recsys serve`) and, as target `migrations`, the schema migration Job.
#
# Build from the repository root (the build context must be the repo root):
#   docker build -f deploy/docker/orchestrator.Dockerfile -t REGISTRY/recsys/orchestrator:TAG .
#   docker build -f deploy/docker/orchestrator.Dockerfile --target migrations \
#       -t REGISTRY/recsys/migrations:TAG .
# BuildKit reads deploy/docker/orchestrator.Dockerfile.dockerignore next to this file.

# Any Debian-based Python 3.11 image with `python` and venv; `make images` passes a local
# Debian 12 base built with mmdebstrap (deploy/podman/images.py).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# Only the orchestrator extra: no torch, transformers or streamlit (the models run in Triton).
ARG GRPCIO_TOOLS_VERSION=1.81.0
# Unset in production (PyPI); `make images` passes PIP_NO_INDEX=1 and PIP_FIND_LINKS=/wheels
# with a wheelhouse mounted there (deploy/podman/images.py). ARGs reach RUN as env vars.
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Code generation tools live in their own venv so they never reach the runtime image.
RUN python -m venv /opt/tools \
 && /opt/tools/bin/pip install "grpcio-tools==${GRPCIO_TOOLS_VERSION}" \
 && python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY protos ./protos
# Same step as `make proto`: generated code goes to build/proto (package recsys.v1).
RUN mkdir -p build/proto \
 && /opt/tools/bin/python -m grpc_tools.protoc -I protos \
      --python_out=build/proto --pyi_out=build/proto --grpc_python_out=build/proto \
      protos/recsys/v1/recsys.proto \
 && touch build/proto/recsys/__init__.py build/proto/recsys/v1/__init__.py
COPY serving ./serving
RUN /opt/venv/bin/pip install ".[orchestrator]" \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" recsys \
 && useradd --system --uid "${UID}" --gid recsys --home-dir /app --shell /usr/sbin/nologin recsys
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# alembic.ini + migrations/ so the same image runs `alembic upgrade head` (the migrations Job).
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RECSYS_GRPC_HOST=0.0.0.0 \
    RECSYS_START_TRITON=false \
    RECSYS_STATE_DIR=/var/lib/recsys
RUN mkdir -p /var/lib/recsys && chown recsys:recsys /var/lib/recsys
USER ${UID}:${UID}
EXPOSE 50051 9464
# `recsys serve` drains in-flight calls on SIGTERM (exec form: the signal reaches Python).
ENTRYPOINT ["recsys"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------
# The migrations Job: the orchestrator image with `alembic upgrade head` as its entrypoint.
# (The k8s Job runs the orchestrator image with this command, so building this target is
# optional; it exists for `docker run` and for registries that want one image per job.)
FROM runtime AS migrations
ENTRYPOINT ["alembic"]
CMD ["upgrade", "head"]

# The default target is the orchestrator.
FROM runtime
