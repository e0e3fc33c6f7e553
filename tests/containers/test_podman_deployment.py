"""The deployment for real: the images `make images` built, started from the Kubernetes
manifests (overlays/podman) by `podman kube play`, checked through the public API, killed
and recovered, torn down (deploy/podman/check.py says what exactly; `make deploy-check`
runs the same check on its own).

Needs podman, buildah, runc and mmdebstrap and the images (`make test` and `make
test-containers` install and build them first); without them it is skipped, except in CI
(CI=true), where that fails the run.
"""

from __future__ import annotations

import json

import pytest

from deploy.podman import check
from deploy.podman.engine import Engine, missing_tools
from deploy.podman.images import IMAGES
from tests.conftest import require_tool

pytestmark = [pytest.mark.containers, pytest.mark.slow]


@pytest.mark.timeout(2400)
def test_the_podman_overlay_serves_survives_a_triton_crash_and_leaves_nothing() -> None:
    missing = missing_tools()
    require_tool(not missing, f"{', '.join(missing)} not installed (`make container-tools`)")
    engine = Engine.for_state_dir()
    absent = [
        image.reference
        for image in IMAGES
        if engine.run("podman", "image", "exists", image.reference, check=False).returncode
    ]
    require_tool(not absent, f"images not built (`make images`): {absent}")
    report = check.run(engine)
    print(json.dumps(report.__dict__, indent=2))
    assert len(report.checks) == 9, report.checks
    assert {"triton", "orchestrator", "dashboard", "postgres"} <= report.startup_s.keys()
