"""The deployment check: the ``podman`` overlay played with podman, checked through its API.

    python -m deploy.podman.check        # `make deploy-check` (after `make images`)

Renders deploy/k8s/overlays/podman (the cpu overlay's choices with the external-database
component and a PostgreSQL container), plays it with ``podman kube play``
(deploy/podman/kube.py says what podman runs and what is emulated), waits for each
workload through its own readinessProbe, then checks through the public API:

1. Recommend answers while no user_encoder exists yet (degraded, popularity), the
   catalogue loads through UpsertItems (embedded by Triton's content_encoder), the
   model-bootstrap Job writes version 1, Triton polls it in and Recommend answers from the
   model (not degraded);
2. LogFeedback sent twice with the same event id: one accepted, one duplicate, one row;
3. an Admin change (max_per_category=1) is in force in the next Recommend;
4. the dashboard's login page answers, and the Secret's operator logs in (headless
   chromium when installed; its page over HTTP otherwise);
5. the Triton container is killed: Recommend answers degraded; podman's restart policy
   (the Deployment's ``Always``) brings it back, readiness passes again and Recommend
   answers from the model again;

and tears everything down, failing if anything of it is left.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from deploy.podman.engine import REPO, Engine
from deploy.podman.images import IMAGES
from deploy.podman.kube import NOT_RUN, Cluster, Manifests

OVERLAY = REPO / "deploy" / "k8s" / "overlays" / "podman"
CATEGORIES = ("astronomy", "cooking", "gardening", "jazz", "sailing", "chess")
ITEMS_PER_CATEGORY = 10
T = TypeVar("T")


@dataclass
class Report:
    """What ran and what was measured (printed as JSON by ``main``)."""

    startup_s: dict[str, float] = field(default_factory=dict)
    job_attempts: dict[str, int] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    recovery_s: float = 0.0
    total_s: float = 0.0

    def passed(self, check: str) -> None:
        print(f"ok: {check}", flush=True)
        self.checks.append(check)


def kubectl() -> str:
    """kubectl as the offline tests find it (`make deploy-tools` installs one if missing)."""
    local = REPO / ".venv-kubectl" / "bin" / "kubectl"
    found = os.environ.get("KUBECTL") or (str(local) if local.exists() else shutil.which("kubectl"))
    if not found:
        raise RuntimeError("kubectl not found (run `make deploy-tools`)")
    return found


def render(overlay: Path = OVERLAY) -> Manifests:
    out = subprocess.run(
        [kubectl(), "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return Manifests.load(out)


def _secret(manifests: Manifests, prefix: str, key: str) -> str:
    for secret in manifests.of_kind("Secret"):
        if secret["metadata"]["name"].rsplit("-", 1)[0] == prefix:
            return base64.b64decode(secret["data"][key]).decode()
    raise KeyError(prefix)


def _probe_budget_s(manifests: Manifests, name: str) -> float:
    """The time the manifest gives a workload to start: its startupProbe's budget, else
    its liveness probe's initial delay plus the readiness probe's failures, at least 2 min."""
    container = manifests.workloads[name].template["spec"]["containers"][0]
    startup = container.get("startupProbe")
    if startup:
        return float(startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3))
    live = container.get("livenessProbe", {})
    return max(120.0, float(live.get("initialDelaySeconds", 0)) + 60)


def _until(what: str, attempt: Callable[[], T | None], timeout_s: float, every_s: float = 2) -> T:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = attempt()
            if result is not None:
                return result
        except Exception as error:  # the call is retried until the deadline
            last = error
        time.sleep(every_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s (last error: {last!r})")


def _catalogue() -> list[Any]:
    from serving.core.domain import Item

    return [
        Item(
            item_id=f"{category}-{n}",
            title=f"{category.title()} guide number {n}",
            description=f"An introduction to {category}, part {n}.",
            categories=(category,),
        )
        for category in CATEGORIES
        for n in range(ITEMS_PER_CATEGORY)
    ]


@contextlib.contextmanager
def exclusive(engine: Engine) -> Iterator[None]:
    """One check at a time per checkout (the pod names come from the manifests)."""
    with (engine.root / "deploy-check.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def start(cluster: Cluster, report: Report) -> None:
    """Bring the platform up in dependency order, each step waiting on its own probes."""
    manifests = cluster.manifests
    cluster.play("postgres")
    report.startup_s["postgres"] = cluster.wait_ready(
        "postgres", _probe_budget_s(manifests, "postgres")
    )
    started = time.monotonic()
    report.job_attempts["migrate"] = cluster.run_job("migrate", timeout_s=600)
    report.startup_s["migrate"] = time.monotonic() - started
    for name in ("triton", "orchestrator", "dashboard"):
        cluster.play(name)
    for name in ("triton", "orchestrator", "dashboard"):
        report.startup_s[name] = cluster.wait_ready(name, _probe_budget_s(manifests, name))


def check_serving(cluster: Cluster, report: Report) -> None:
    """Recommend, LogFeedback, Admin through the orchestrator's public gRPC API."""
    from serving.client import Event, RecsysClient

    manifests = cluster.manifests
    target = f"{cluster.pod_ip('orchestrator')}:50051"
    token = _secret(manifests, "recsys-admin", "token")
    with RecsysClient(target, token=token, timeout_s=30) as client:
        first = client.recommend("podman-user", k=5)
        assert first.degraded, "no user_encoder version yet, yet not degraded"
        report.passed("Recommend answers before the first model (degraded, popularity)")
        assert client.upsert_items(_catalogue()) == len(CATEGORIES) * ITEMS_PER_CATEGORY
        started = time.monotonic()
        report.job_attempts["model-bootstrap"] = cluster.run_job("model-bootstrap", timeout_s=900)
        report.startup_s["model-bootstrap"] = time.monotonic() - started

        # A user with a history: their list comes from the user_encoder (a user without
        # one gets popularity, not degraded but without a model version).
        history = [f"jazz-{n}" for n in range(3)] + [f"chess-{n}" for n in range(3)]
        client.log_feedback(
            [Event(item_id=i, type="click", user_id="podman-user") for i in history]
        )

        def from_the_model() -> Any:
            rec = client.recommend("podman-user", k=10)
            return rec if not rec.degraded and rec.model_version and len(rec.items) == 10 else None

        rec = _until("Recommend from the model", from_the_model, timeout_s=180)
        report.startup_s["first model served"] = time.monotonic() - started
        report.passed(f"Recommend answers from the model (version {rec.model_version})")

        event = Event(item_id="jazz-9", type="click", user_id="podman-user")
        once, twice = client.log_feedback([event]), client.log_feedback([event])
        assert (once.accepted, once.duplicates, twice.accepted, twice.duplicates) == (1, 0, 0, 1)
        rows = _sql(cluster, f"SELECT count(*) FROM events WHERE event_id = '{event.event_id}'")
        assert rows == "1", rows
        report.passed("LogFeedback stored exactly once (retry counted as a duplicate, one row)")

        before = client.get_parameters()["version"]
        changed = client.update_parameters(
            {"max_per_category": 1, "diversity_lambda": 0.0},
            changed_by="deploy-check",
            reason="check",
        )
        assert changed["version"] > before

        def capped() -> Any:
            items = client.recommend("podman-user", k=6).item_ids
            cats = [i.rsplit("-", 1)[0] for i in items]
            return items if len(items) == 6 and len(set(cats)) == 6 else None

        _until("the Admin change in force", capped, timeout_s=30, every_s=1)
        report.passed("an Admin change (max_per_category=1) is in force in Recommend")


def _sql(cluster: Cluster, query: str) -> str:
    container = cluster.manifests.workloads["postgres"].container_name("postgres")
    return cluster.engine.run(
        "podman",
        "exec",
        container,
        "psql",
        "-h",
        "/tmp",
        "-U",
        "recsys",
        "-d",
        "recsys",
        "-tAc",
        query,
    ).stdout.strip()


def check_dashboard(cluster: Cluster, report: Report) -> None:
    """The login page answers; with chromium, the Secret's operator logs in."""
    url = f"http://{cluster.pod_ip('dashboard')}:8501/"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200 and b'<div id="root">' in response.read()
    chromium = shutil.which("chromium")
    if not chromium:
        report.passed("the dashboard's page answers over HTTP (no chromium: login not driven)")
        return
    from playwright.sync_api import expect, sync_playwright

    name, password = (
        _secret(cluster.manifests, "recsys-dashboard", "users").split(",")[0].split(":", 1)
    )
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
            ],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(90_000)
            page.goto(url)
            page.get_by_label("Operator", exact=True).fill(name)
            page.get_by_label("Password", exact=True).fill(password)
            page.get_by_role("button", name="Log in").click()
            # the sidebar names the operator once the login is accepted (the first page
            # itself may take long to render on a busy machine: not waited for)
            expect(page.get_by_text("Signed in as")).to_be_visible()
            expect(page.get_by_text(name, exact=True)).to_be_visible()
        finally:
            browser.close()
    report.passed("the dashboard's login page answers and the Secret's operator logs in")


def check_triton_restart(cluster: Cluster, report: Report) -> None:
    """Kill Triton: degraded answers, then podman's restart (the Deployment's restartPolicy)
    and the model again."""
    from serving.client import RecsysClient

    triton = cluster.manifests.workloads["triton"].container_name("triton")
    policy = cluster.engine.run(
        "podman", "inspect", triton, "--format", "{{.HostConfig.RestartPolicy.Name}}"
    ).stdout.strip()
    assert policy == "always", f"Triton's restart policy is {policy!r}"
    target = f"{cluster.pod_ip('orchestrator')}:50051"
    with RecsysClient(target, timeout_s=30, retries=0) as client:
        killed = time.monotonic()
        # A crash (as the OOM killer would): SIGKILL to the server process from outside.
        # (`podman kill` is a stop by the user, which podman's restart policy ignores.)
        pid = cluster.engine.run("podman", "inspect", triton, "--format", "{{.State.Pid}}")
        os.kill(int(pid.stdout.strip()), signal.SIGKILL)

        def degraded() -> Any:
            rec = client.recommend("podman-user", k=5)
            return rec if rec.degraded and rec.items else None

        _until("a degraded answer while Triton is down", degraded, timeout_s=60, every_s=0.5)
        report.passed("Triton killed: Recommend answers degraded")
        cluster.wait_ready("triton", _probe_budget_s(cluster.manifests, "triton"))

        def recovered() -> Any:
            rec = client.recommend("podman-user", k=5)
            return rec if not rec.degraded and rec.model_version else None

        _until("Recommend from the model after Triton's restart", recovered, timeout_s=180)
        report.recovery_s = time.monotonic() - killed
        report.passed(
            f"Triton restarted by podman; model answers again after {report.recovery_s:.0f} s"
        )


def run(engine: Engine | None = None) -> Report:
    """The whole check; everything it started is removed however it ends."""
    engine = engine or Engine.for_state_dir()
    report = Report(not_run=sorted(NOT_RUN))
    manifests = render()
    missing = [
        i.reference
        for i in IMAGES
        if engine.run("podman", "image", "exists", i.reference, check=False).returncode
    ]
    if missing:
        raise RuntimeError(f"images missing (run `make images`): {missing}")
    started = time.monotonic()
    with exclusive(engine), tempfile.TemporaryDirectory(dir=engine.root / "tmp") as workdir:
        cluster = Cluster(engine, manifests, f"recsys-check-{uuid.uuid4().hex[:8]}", Path(workdir))
        stale = cluster.leftovers()
        if stale:
            # This storage is private to this checkout: what is in it is an earlier check's.
            print(f"removing what an interrupted check left: {stale}", flush=True)
            _remove_everything(engine)
        try:
            cluster.create_network()
            cluster.create_secrets_and_volumes()
            start(cluster, report)
            report.passed("every workload ready by its own readinessProbe")
            check_serving(cluster, report)
            check_dashboard(cluster, report)
            check_triton_restart(cluster, report)
        except BaseException:
            # What the pods said, for the failure's diagnosis (they are removed next).
            for name in cluster.played:
                with contextlib.suppress(Exception):
                    print(f"===== {name}\n{cluster.all_logs(name)}", flush=True)
            raise
        finally:
            left = cluster.teardown()
            if left:
                _remove_everything(engine)
        assert not left, f"left after teardown: {left}"
        report.passed("torn down: no pod, container, volume, secret or network left")
    report.total_s = time.monotonic() - started
    return report


def _remove_everything(engine: Engine) -> None:
    """Empty this checkout's private container storage of pods, volumes, secrets."""
    engine.run("podman", "pod", "rm", "--all", "--force", check=False, timeout_s=300)
    engine.run("podman", "rm", "--all", "--force", check=False, timeout_s=300)
    engine.run("podman", "volume", "prune", "--force", check=False)
    secrets = engine.run("podman", "secret", "ls", "--format", "{{.Name}}", check=False).stdout
    for secret in secrets.split():
        engine.run("podman", "secret", "rm", secret, check=False)
    networks = engine.run("podman", "network", "ls", "--format", "{{.Name}}", check=False).stdout
    for network in networks.split():
        if network.startswith("recsys-check-"):
            engine.run("podman", "network", "rm", "--force", network, check=False)


def main() -> None:
    # SIGTERM (a CI job cancelled, a timeout) ends the run through its teardown.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report = run()
    print(json.dumps(report.__dict__, indent=2))


if __name__ == "__main__":
    main()
