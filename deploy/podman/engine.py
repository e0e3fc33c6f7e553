"""One podman/buildah set-up, private to this checkout.

Storage, runtime state, temporary files and network definitions live under
``<state>/podman`` (pointed to by ``CONTAINERS_CONF`` / ``CONTAINERS_STORAGE_CONF``), so
nothing here touches the machine's /etc/containers or another user's containers, and
the images stay cached between builds. The engine settings are the ones this kind of
machine needs (../shared/ENVIRONMENT.md): crun refuses the hybrid cgroup layout (runc
works), the default ulimits are refused, and there is no systemd to manage cgroups.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("podman", "buildah", "runc", "mmdebstrap")

_CONTAINERS_CONF = """\
[containers]
default_ulimits = []
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
tmp_dir = "{root}/tmp"
volume_path = "{root}/storage/volumes"

[network]
network_config_dir = "{root}/networks"
"""

_STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{root}/storage"
runroot = "{root}/run"
"""


class EngineError(RuntimeError):
    """A podman/buildah command failed; the message carries its output."""


@dataclass(frozen=True)
class Engine:
    """podman and buildah with this checkout's configuration."""

    root: Path

    @classmethod
    def for_state_dir(cls, state_dir: Path | None = None) -> Engine:
        """The engine under ``state_dir`` (default: RECSYS_IMAGE_STATE or <repo>/.state)."""
        state = state_dir or Path(os.environ.get("RECSYS_IMAGE_STATE", REPO / ".state"))
        root = state.resolve() / "podman"
        for sub in ("tmp", "storage", "run", "networks"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "containers.conf").write_text(_CONTAINERS_CONF.format(root=root))
        (root / "storage.conf").write_text(_STORAGE_CONF.format(root=root))
        return cls(root)

    @property
    def env(self) -> dict[str, str]:
        """The environment every podman/buildah call runs in."""
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(self.root / "containers.conf")
        env["CONTAINERS_STORAGE_CONF"] = str(self.root / "storage.conf")
        env["TMPDIR"] = str(self.root / "tmp")
        return env

    def run(
        self,
        *args: str,
        input_text: str | None = None,
        timeout_s: float = 120,
        check: bool = True,
        cwd: Path = REPO,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` (``podman ...``, ``buildah ...``) and capture its output."""
        result = subprocess.run(
            list(args),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=self.env,
            cwd=cwd,
            check=False,
        )
        if check and result.returncode != 0:
            raise EngineError(
                f"{' '.join(args[:4])}... exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def stream(self, *args: str, timeout_s: float, cwd: Path = REPO) -> None:
        """Run a long command (a build) with its output going to ours."""
        result = subprocess.run(list(args), env=self.env, cwd=cwd, timeout=timeout_s, check=False)
        if result.returncode != 0:
            raise EngineError(f"{' '.join(args[:4])}... exited {result.returncode}")


def missing_tools() -> list[str]:
    """The container tools not installed on this machine."""
    from shutil import which

    return [tool for tool in TOOLS if which(tool) is None]
