"""Build every image of deploy/docker/ with buildah, from a Debian 12 base made here.

Public image registries are not reachable from every machine, so the Python base is a
Debian 12 (bookworm) root filesystem built by mmdebstrap from Debian's own packages and
imported with podman; the Dockerfiles take it as ``PYTHON_IMAGE`` (their default stays
the slim Python image for production). pip installs come from a wheelhouse downloaded
once on the host (``pip download``: the host's pip settings and indexes apply) and
bind-mounted into the builds with ``PIP_NO_INDEX=1``, so a build needs no network for
Python packages and a rebuild downloads nothing. Both are cached under
``<state>/images``; buildah's layer cache lives in the engine's storage.

    python -m deploy.podman.images            # build all, print each image's size
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deploy.podman.engine import REPO, Engine

SUITE = "bookworm"
# Debian's Python 3.11 (3.11.2) with venv, and libpython for Triton's Python-backend stub.
BASE_PACKAGES = (
    "passwd",
    "python3",
    "python3-venv",
    "python-is-python3",
    "libpython3.11",
    "ca-certificates",
)
# Documentation, manual pages and translations never reach the image.
_DPKG_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/locale/*",
    "/usr/share/info/*",
)
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

GRPCIO_TOOLS_VERSION = "1.81.0"
PYTRITON_VERSION = "0.7.0"
TAG = "local"


@dataclass(frozen=True)
class Image:
    """One image: its Dockerfile, optional target and the local name the overlay uses."""

    name: str
    dockerfile: str
    target: str | None = None
    base_arg: str = "PYTHON_IMAGE"

    @property
    def reference(self) -> str:
        return f"localhost/recsys/{self.name}:{TAG}"


IMAGES = (
    Image("orchestrator", "orchestrator.Dockerfile", target="runtime"),
    Image("migrations", "orchestrator.Dockerfile", target="migrations"),
    Image("dashboard", "dashboard.Dockerfile"),
    Image("triton-cpu", "triton-cpu.Dockerfile"),
    Image("postgres", "postgres.Dockerfile", base_arg="DEBIAN_IMAGE"),
)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def base_image(engine: Engine, cache: Path) -> str:
    """The Debian 12 + Python base, imported from a cached mmdebstrap root filesystem."""
    key = _digest(SUITE, *BASE_PACKAGES, *_DPKG_EXCLUDES)
    reference = f"localhost/recsys/python-base:{SUITE}-{key}"
    if engine.run("podman", "image", "exists", reference, check=False).returncode == 0:
        return reference
    rootfs = cache / f"debian-{SUITE}-{key}.tar"
    if not rootfs.exists():
        partial = rootfs.with_suffix(".partial.tar")
        started = time.monotonic()
        engine.stream(
            "mmdebstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            *(f"--dpkgopt=path-exclude={pattern}" for pattern in _DPKG_EXCLUDES),
            SUITE,
            str(partial),
            timeout_s=1200,
        )
        partial.rename(rootfs)
        print(f"base root filesystem: {time.monotonic() - started:.0f} s", flush=True)
    engine.run(
        "podman",
        "import",
        "--change",
        f"ENV PATH={_PATH}",
        "--change",
        'CMD ["python3"]',
        str(rootfs),
        reference,
        timeout_s=600,
    )
    return reference


def wheelhouse(cache: Path) -> Path:
    """Every wheel the images install, downloaded by the host's pip (cached by inputs)."""
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pyproject = (REPO / "pyproject.toml").read_text()
    stamp = wheels / f".complete-{_digest(pyproject, GRPCIO_TOOLS_VERSION, PYTRITON_VERSION)}"
    if stamp.exists():
        return wheels
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheels)]
    # The build backend (pip's isolated builds of our package find it here too).
    subprocess.run([*pip, "setuptools>=77", f"grpcio-tools=={GRPCIO_TOOLS_VERSION}"], check=True)
    subprocess.run([*pip, f"{REPO}[orchestrator,dashboard,triton]"], check=True)
    # Only its tritonserver binary is used (the Triton CPU image unpacks it): no deps.
    subprocess.run([*pip, "--no-deps", f"nvidia-pytriton=={PYTRITON_VERSION}"], check=True)
    for stale in wheels.glob(".complete-*"):
        stale.unlink()
    stamp.touch()
    return wheels


def build(engine: Engine, image: Image, base: str, wheels: Path) -> None:
    """``buildah bud`` one image from the repository root (the Dockerfiles' context)."""
    dockerfile = REPO / "deploy" / "docker" / image.dockerfile
    args = [
        "buildah",
        "bud",
        "--layers",
        "--pull=never",
        "--format=docker",
        "-f",
        str(dockerfile),
        "--ignorefile",
        f"{dockerfile}.dockerignore",
        "--build-arg",
        f"{image.base_arg}={base}",
        "--build-arg",
        "PIP_NO_INDEX=1",
        "--build-arg",
        "PIP_FIND_LINKS=/wheels",
        "--volume",
        f"{wheels}:/wheels:ro",
        "-t",
        image.reference,
    ]
    if image.target:
        args += ["--target", image.target]
    engine.stream(*args, ".", timeout_s=3600)


def image_size_mb(engine: Engine, reference: str) -> float:
    """The image's uncompressed size as podman reports it."""
    out = engine.run("podman", "image", "inspect", "--format", "{{.Size}}", reference).stdout
    return int(out.strip()) / 1e6


def build_all(engine: Engine, names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Build the images (all by default); returns seconds and MB per image."""
    cache = engine.root.parent / "images"
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    base = base_image(engine, cache)
    wheels = wheelhouse(cache)
    print(f"base image and wheelhouse ready: {time.monotonic() - started:.0f} s", flush=True)
    figures: dict[str, dict[str, float]] = {
        "python-base": {"seconds": 0.0, "size_mb": image_size_mb(engine, base)}
    }
    for image in IMAGES:
        if names and image.name not in names:
            continue
        started = time.monotonic()
        build(engine, image, base, wheels)
        figures[image.name] = {
            "seconds": time.monotonic() - started,
            "size_mb": image_size_mb(engine, image.reference),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="images to build (default: all)")
    options = parser.parse_args()
    figures = build_all(Engine.for_state_dir(), options.names)
    print(json.dumps(figures, indent=2))
    for name, figure in figures.items():
        print(f"{name:14s} {figure['size_mb']:8.0f} MB  built in {figure['seconds']:5.0f} s")


if __name__ == "__main__":
    main()
