"""One typed settings object for every process of the platform.

Every field can be set from the environment with the ``RECSYS_`` prefix
(``RECSYS_GRPC_PORT=50052``). Unknown ``RECSYS_*`` variables are rejected so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "RECSYS_"


class InstanceKind(StrEnum):
    """Where Triton runs model instances (Triton's `instance_group.kind`)."""

    CPU = "KIND_CPU"
    GPU = "KIND_GPU"


Port = Field(ge=1, le=65535)


def log_format(worker: int | None = None) -> str:
    """The log line's format (of one worker of several: marked with its number)."""
    marked = "" if worker is None else f"[worker {worker}] "
    return f"%(asctime)s %(levelname)s {marked}%(name)s: %(message)s"


class Settings(BaseSettings):
    """All settings of the platform; see README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    state_dir: Path = Path(".state")
    database_url: SecretStr | None = None
    """PostgreSQL URL; when unset, an embedded server is started under ``state_dir``."""

    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50051, ge=1, le=65535)
    metrics_port: int = Field(9464, ge=0, le=65535)
    """Prometheus /metrics of the gRPC server; 0 disables it."""
    dashboard_port: int = Field(8501, ge=1, le=65535)

    triton_host: str = "127.0.0.1"
    triton_http_port: int = Field(8000, ge=1, le=65535)
    triton_grpc_port: int = Field(8001, ge=1, le=65535)
    triton_metrics_port: int = Field(8002, ge=1, le=65535)
    triton_instance_kind: InstanceKind = InstanceKind.CPU
    triton_timeout_ms: int = Field(150, ge=1, le=60_000)
    """Deadline of one Triton call; past it Recommend answers from the fallback."""
    content_model: Path | None = None
    """A sentence-transformers folder on disk for the content encoder (default: the bundled
    all-MiniLM-L6-v2); its width and pooling come from the folder. After changing it:
    `recsys prepare-models`, restart Triton, `recsys reembed`, then train and export a
    user encoder with it (README "Bring your own content encoder")."""
    start_triton: bool = True
    """`recsys up` starts a local tritonserver; set false when Triton runs elsewhere."""

    admin_token: SecretStr = SecretStr("recsys-dev-token")
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """Largest request or response (bytes); bigger requests get RESOURCE_EXHAUSTED."""
    tls_cert_file: Path | None = None
    """PEM certificate chain of the gRPC API; with ``tls_key_file`` it speaks TLS only."""
    tls_key_file: Path | None = None
    feedback_rate_limit: float = Field(50_000, ge=0)
    """LogFeedback events per second one client (peer address) may send; 0 = no limit.
    Past it the call gets RESOURCE_EXHAUSTED and nothing is written."""
    feedback_rate_burst: int = Field(100_000, ge=1)
    """Events a client may send at once on top of the rate (the token bucket's size)."""
    shutdown_grace_s: float = Field(10.0, ge=0)
    db_pool_size: int = Field(16, ge=2, le=500)
    """Connections each server keeps open to PostgreSQL."""
    impression_flush_ms: int = Field(200, ge=1)
    impression_batch_size: int = Field(1000, ge=1)
    index_refresh_s: float = Field(2.0, gt=0)
    """How often a server picks up items and statistics written by other replicas."""
    workers: int = Field(1, ge=1, le=64)
    """Orchestrator processes `recsys serve` runs, sharing the gRPC port (SO_REUSEPORT: the
    kernel spreads connections over them); each keeps its own index and pools, worker
    ``i`` serves /metrics on ``metrics_port + i``."""
    exact_search_below: int = Field(50_000, ge=0)
    """Catalogues with fewer items are retrieved by one exact matrix product; larger ones
    through a FAISS inverted-file index (built in the background per model version)."""
    query_cache_size: int = Field(10_000, ge=0, le=10_000_000)
    """Free-text query embeddings each server keeps (least recently used out; 0 = none)."""

    rollup_refresh_s: float = Field(10.0, gt=0)
    """How often a server folds new impressions and events into the dashboard's rollups."""
    dashboard_users: SecretStr = SecretStr("operator:recsys-dev")
    """Dashboard logins, ``name:password,name:password``; the name is recorded as
    ``changed_by`` on every change an operator makes."""

    demo_items: int = Field(3000, ge=10, le=1_000_000)
    simulate_rate: float = Field(4.0, gt=0)
    """Recommend calls per second made by the demo traffic simulator."""
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value

    @field_validator("dashboard_users")
    @classmethod
    def _logins(cls, value: SecretStr) -> SecretStr:
        for entry in value.get_secret_value().split(","):
            name, _, password = entry.strip().partition(":")
            if not name.strip() or not password:
                raise ValueError("must be name:password pairs separated by commas")
        return value

    @property
    def dashboard_logins(self) -> dict[str, str]:
        """Operator name -> password, from ``dashboard_users``."""
        entries = self.dashboard_users.get_secret_value().split(",")
        pairs = (entry.strip().partition(":") for entry in entries)
        return {name.strip(): password for name, _, password in pairs}

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        ports = {
            "grpc_port": self.grpc_port,
            "dashboard_port": self.dashboard_port,
            "triton_http_port": self.triton_http_port,
            "triton_grpc_port": self.triton_grpc_port,
            "triton_metrics_port": self.triton_metrics_port,
        }
        for worker in range(self.workers if self.metrics_port else 0):
            name = "metrics_port" if worker == 0 else f"metrics_port + {worker} (worker {worker})"
            ports[name] = self.metrics_port + worker
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ValueError(f"{name} and {seen[port]} are both {port}")
            seen[port] = name
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    def to_env(self) -> dict[str, str]:
        """These settings as ``RECSYS_*`` variables, for child processes."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[ENV_PREFIX + name.upper()] = str(
                value.value if isinstance(value, StrEnum) else value
            )
        return env

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"

    @property
    def grpc_target(self) -> str:
        host = "127.0.0.1" if self.grpc_host in {"0.0.0.0", "::", "[::]"} else self.grpc_host
        return f"{host}:{self.grpc_port}"

    @property
    def model_repository(self) -> Path:
        """The runtime model repository Triton serves (weights and versions live here)."""
        return self.state_dir / "model_repository"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, rejecting unknown ``RECSYS_*`` variables."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise ValueError(f"unknown settings in the environment: {', '.join(unknown)}")
    return Settings(**overrides)
