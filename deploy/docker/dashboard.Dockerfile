# syntax=docker/dockerfile:1.7
# Streamlit dashboard (reads PostgreSQL through RECSYS_DATABASE_URL).
#
# Build from the repository root:
#   docker build -f deploy/docker/dashboard.Dockerfile -t REGISTRY/recsys/dashboard:TAG .

# Any Debian-based Python 3.11 image with `python` and venv; `make images` passes a local
# Debian 12 base built with mmdebstrap (deploy/podman/images.py).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# Only the dashboard extra: no torch or transformers.
ARG GRPCIO_TOOLS_VERSION=1.81.0
# Unset in production (PyPI); `make images` passes PIP_NO_INDEX=1 and PIP_FIND_LINKS=/wheels
# with a wheelhouse mounted there (deploy/podman/images.py). ARGs reach RUN as env vars.
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/tools \
 && /opt/tools/bin/pip install "grpcio-tools==${GRPCIO_TOOLS_VERSION}" \
 && python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY protos ./protos
RUN mkdir -p build/proto \
 && /opt/tools/bin/python -m grpc_tools.protoc -I protos \
      --python_out=build/proto --pyi_out=build/proto --grpc_python_out=build/proto \
      protos/recsys/v1/recsys.proto \
 && touch build/proto/recsys/__init__.py build/proto/recsys/v1/__init__.py
COPY serving ./serving
RUN /opt/venv/bin/pip install ".[dashboard]" \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" recsys \
 && useradd --system --uid "${UID}" --gid recsys --home-dir /app --shell /usr/sbin/nologin recsys
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY dashboard ./dashboard
# HOME=/tmp: streamlit writes its machine id and caches under $HOME; the root filesystem is
# read-only in Kubernetes and /tmp is an emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_SERVER_FILE_WATCHER_TYPE=none \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
USER ${UID}:${UID}
EXPOSE 8501
ENTRYPOINT ["streamlit", "run", "dashboard/app.py"]
CMD ["--server.port", "8501"]
