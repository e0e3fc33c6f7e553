"""`recsys` commands against the running platform's database."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from serving.adapters.postgres.db import PROJECT_ROOT
from serving.config import Settings
from tests.integration.platform import Running

pytestmark = pytest.mark.integration


def run_recsys(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`recsys ARGS` with ``settings``, whatever its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "serving.cli", *args],
        env={"PATH": str(Path(sys.executable).parent), **settings.to_env()},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def recsys(platform: Running, *args: str) -> str:
    result = run_recsys(platform.settings, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_bootstrap_model_exports_once_into_an_empty_repository(platform, tmp_path):
    first = recsys(platform, "bootstrap-model", "--repository", str(tmp_path), "--no-load")
    # The number follows the newest item space stored (other tests may have exported some).
    match = re.search(r"exported user_encoder v(\d+)", first)
    assert match and int(match.group(1)) >= 2, first  # v1 is the one the platform serves
    [version] = [p for p in (tmp_path / "user_encoder").iterdir() if p.is_dir()]
    assert version.name == match.group(1)
    files = {p.name for p in version.iterdir()}
    assert files == {"model.py", "weights.pt", "config.json", "content_encoder.json"}
    again = recsys(platform, "bootstrap-model", "--repository", str(tmp_path), "--no-load")
    assert "nothing to do" in again


def test_prepare_models_renders_the_gpu_configs(platform, tmp_path):
    recsys(platform, "prepare-models", "--kind", "KIND_GPU", "--out", str(tmp_path))
    for model in ("content_encoder", "user_encoder"):
        config = (tmp_path / model / "config.pbtxt").read_text()
        assert "kind: KIND_GPU" in config and "KIND_CPU" not in config
    assert (tmp_path / "content_encoder" / "1" / "model.py").exists()
