"""Running the real ``tritonserver`` binary that ships in the nvidia-pytriton wheel.

The binary's folder is copied once into the state folder with the Python-backend
stub for the running interpreter (site-packages stays untouched). The stub must
link this interpreter's libpython and see this virtual environment's packages,
hence LD_LIBRARY_PATH and PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from serving.adapters.triton.repository import versions
from serving.config import Settings
from serving.core.domain import CONTENT_ENCODER, USER_ENCODER


def _pytriton_root() -> Path:
    import pytriton

    return Path(pytriton.__file__).resolve().parent


def server_home(state_dir: Path) -> Path:
    """A private copy of the tritonserver folder with this Python's backend stub."""
    home = state_dir / "tritonserver"
    stub = home / "backends" / "python" / "triton_python_backend_stub"
    if stub.exists():
        return home
    source = _pytriton_root() / "tritonserver"
    staging = state_dir / ".tritonserver-staging"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns("python_backend_stubs"))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copy2(
        source / "python_backend_stubs" / version / "triton_python_backend_stub",
        staging / "backends" / "python" / "triton_python_backend_stub",
    )
    staging.rename(home)
    return home


def server_environment() -> dict[str, str]:
    """Environment in which the Python-backend stub runs this interpreter and venv."""
    env = dict(os.environ)
    libs = [
        str(sysconfig.get_config_var("LIBDIR")),
        str(_pytriton_root().parent / "nvidia_pytriton.libs"),
    ]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = ":".join(libs)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def server_command(settings: Settings, home: Path) -> list[str]:
    """Explicit model control: the encoders load at start (user_encoder once a version
    exists) and new versions load through the model-control API, without a restart."""
    models = [CONTENT_ENCODER]
    if versions(settings.model_repository, USER_ENCODER):
        models.append(USER_ENCODER)
    return [
        str(home / "bin" / "tritonserver"),
        f"--model-repository={settings.model_repository.resolve()}",
        f"--backend-directory={home / 'backends'}",
        f"--http-port={settings.triton_http_port}",
        f"--grpc-port={settings.triton_grpc_port}",
        f"--metrics-port={settings.triton_metrics_port}",
        "--http-address=127.0.0.1",
        "--grpc-address=127.0.0.1",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        "--model-control-mode=explicit",
        *(f"--load-model={model}" for model in models),
        "--strict-readiness=true",
        "--exit-timeout-secs=5",
        "--log-verbose=0",
    ]


def start_server(
    settings: Settings, log: IO[bytes], preexec_fn: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """Start tritonserver on the runtime model repository (not waiting for readiness)."""
    home = server_home(settings.state_dir)
    return subprocess.Popen(
        server_command(settings, home),
        env=server_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=preexec_fn,
    )


def wait_ready(
    settings: Settings, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 180
) -> None:
    """Block until Triton reports ready; raises if it exits or the timeout passes."""
    url = f"http://{settings.triton_host}:{settings.triton_http_port}/v2/health/ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"tritonserver exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"tritonserver not ready after {timeout_s:.0f}s ({url})")
