"""Static checks of the Kubernetes deployment (deploy/k8s): render, schema, policy, consistency.

Every overlay under deploy/k8s/overlays and every combination of the base with the
postgres components (cnpg / external) and the Triton components (cpu / gpu) is rendered with
`kubectl kustomize`, validated offline against the Kubernetes JSON schemas
(`kubernetes-validate`), checked with `checkov` (its own venv, `.venv-checkov`, set up by
`make deploy-tools`) and cross-checked against `serving.config.Settings` and the Triton
model repository. Nothing here needs a cluster or the network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving.config import ENV_PREFIX, InstanceKind, Settings, load_settings
from serving.core.domain import CONTENT_ENCODER
from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
MODEL_REPOSITORY = REPO / "model_repository"

# The oldest Kubernetes version the manifests target (native gRPC probes are GA since 1.27).
K8S_VERSION = "1.30"
# Custom resources: no schema in kubernetes-validate; their operators validate them.
CRD_KINDS = {("postgresql.cnpg.io/v1", "Cluster")}
# Triton's own defaults for --http-port/--grpc-port/--metrics-port.
TRITON_DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}

# checkov checks that do not apply, each with its reason (keep this list minimal).
CHECKOV_SKIPS = {
    # Images are pinned by tag in the kustomizations (`kustomize edit set image` at release
    # time may add a digest); the placeholder registry has no digests to pin to.
    "CKV_K8S_43": "image digests are set at release time, not in the templates",
    # serving.config.Settings reads RECSYS_DATABASE_URL / RECSYS_ADMIN_TOKEN from the
    # environment only (no secrets_dir); the values come from Secrets via secretKeyRef.
    "CKV_K8S_35": "Settings reads secrets from env vars (secretKeyRef), not from files",
}

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
DB_CLIENT_LABEL = "recsys.io/database-client"


def _kubectl() -> str | None:
    """kubectl from $KUBECTL, the PyPI wheel `make deploy-tools` installs when the machine has
    none (or one too old for kustomize components), or PATH."""
    candidates = [
        os.environ.get("KUBECTL"),
        str(REPO / ".venv-kubectl" / "bin" / "kubectl"),
        shutil.which("kubectl"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


KUBECTL = _kubectl()
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(autouse=True, scope="module")
def _kubectl_present() -> None:
    require_tool(KUBECTL is not None, "kubectl not found (run `make deploy-tools` to install it)")


def _overlays() -> dict[str, Path]:
    return {p.name: p for p in sorted((K8S / "overlays").iterdir()) if p.is_dir()}


# Synthetic overlays: every postgres component with every Triton flavour.
COMBOS = {
    f"combo-{triton}-{pg}": [f"components/postgres-{pg}"]
    + (["components/triton-gpu"] if triton == "gpu" else [])
    for triton in ("cpu", "gpu")
    for pg in ("cnpg", "external")
}


def _render(directory: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """name -> rendered resources, for each overlay and each component combination."""
    out = {name: _render(path) for name, path in _overlays().items()}
    root = tmp_path_factory.mktemp("combos")
    for name, components in COMBOS.items():
        folder = root / name
        folder.mkdir()
        # kustomize refuses absolute paths; relative paths may leave the root for directories.
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(K8S / "base", folder)],
            "components": [os.path.relpath(K8S / c, folder) for c in components],
        }
        (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        out[name] = _render(folder)
    return out


def _is_gpu(name: str) -> bool:
    return name == "gpu" or name.startswith("combo-gpu")


def _uses_cnpg(docs: list[dict[str, Any]]) -> bool:
    return any(d["kind"] == "Cluster" for d in docs)


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"{kind}/{name} not rendered")


def _find_generated(docs: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """A ConfigMap/Secret from a generator (its name carries a content hash)."""
    found = [
        d
        for d in docs
        if d["kind"] == kind and re.fullmatch(rf"{prefix}(-[a-z0-9]{{10}})?", d["metadata"]["name"])
    ]
    assert len(found) == 1, f"expected one {kind} {prefix}*, got {len(found)}"
    return found[0]


def _pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            yield doc, doc["spec"]["template"]["spec"]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _container(docs: list[dict[str, Any]], kind: str, name: str, container: str) -> dict:
    pod = _find(docs, kind, name)["spec"]["template"]["spec"]
    for c in _containers(pod):
        if c["name"] == container:
            return c
    raise AssertionError(f"{kind}/{name} has no container {container}")


def _flag(args: list[str], flag: str) -> list[str]:
    return [a.split("=", 1)[1] for a in args if a.startswith(f"--{flag}=")]


# ---------------------------------------------------------------------------- rendering, schema


def test_every_overlay_renders(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert {"cpu", "gpu"} <= rendered.keys()
    for name, docs in rendered.items():
        kinds = {d["kind"] for d in docs}
        assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Job"} <= kinds, name
        assert all(
            d["metadata"].get("namespace") == "recsys"
            for d in docs
            if d["kind"] not in {"Namespace"}
        ), name


def test_schemas_offline(rendered: dict[str, list[dict[str, Any]]]) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        require_tool(False, "install the dev extras (kubernetes-validate)")
    skipped: set[tuple[str, str]] = set()
    for name, docs in rendered.items():
        for doc in docs:
            key = (doc["apiVersion"], doc["kind"])
            if key in CRD_KINDS:
                skipped.add(key)
                continue
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                pytest.fail(f"{name}: {e.message} (an unknown CRD? add it to CRD_KINDS)")
    assert skipped == CRD_KINDS, "a CRD kind listed in CRD_KINDS is no longer rendered"


# ---------------------------------------------------------------------------- policy (checkov)


def test_checkov_policies(rendered: dict[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    require_tool(CHECKOV.exists(), f"{CHECKOV} missing: run `make deploy-tools`")
    for name, docs in rendered.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "rendered.yaml").write_text(yaml.safe_dump_all(docs))
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_COLOR": "1"}
    proc = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--compact",
            "--quiet",
            "-o",
            "json",
            "--skip-download",
            "--skip-check",
            ",".join(sorted(CHECKOV_SKIPS)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert proc.stdout.strip(), f"checkov printed nothing (rc {proc.returncode}):\n{proc.stderr}"
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for report in reports
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failures:\n" + "\n".join(failed)
    passed = sum(report["summary"]["passed"] for report in reports)
    assert passed > 100, f"checkov ran suspiciously few checks ({passed})"


def test_pod_security(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Our own restricted-profile check (does not depend on checkov's check set)."""
    for name, docs in rendered.items():
        for doc, pod in _pod_specs(docs):
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            psc = pod["securityContext"]
            assert psc["runAsNonRoot"] is True, where
            assert psc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert pod["automountServiceAccountToken"] is False, where
            assert pod.get("serviceAccountName") not in (None, "default"), where
            mounts_by_volume = {v["name"]: v for v in pod.get("volumes", [])}
            for c in _containers(pod):
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, (where, c["name"])
                assert sc["readOnlyRootFilesystem"] is True, (where, c["name"])
                assert sc["capabilities"]["drop"] == ["ALL"], (where, c["name"])
                assert "add" not in sc["capabilities"], (where, c["name"])
                for section in ("requests", "limits"):
                    assert {"cpu", "memory"} <= c["resources"][section].keys(), (where, c["name"])
                tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
                assert tmp, f"{where}/{c['name']}: read-only root needs an emptyDir on /tmp"
                assert "emptyDir" in mounts_by_volume[tmp[0]["name"]], where
                image = c["image"]
                assert ":" in image.rsplit("/", 1)[-1], f"{where}: untagged image {image}"
                assert not image.endswith(":latest"), f"{where}: {image}"


# ---------------------------------------------------------------------------- consistency


def _settings_fields() -> set[str]:
    return {ENV_PREFIX + f.upper() for f in Settings.model_fields}


def test_env_vars_are_settings_fields(rendered: dict[str, list[dict[str, Any]]]) -> None:
    fields = _settings_fields()
    for name, docs in rendered.items():
        for doc in docs:
            if doc["kind"] == "ConfigMap":
                unknown = {k for k in doc.get("data", {}) if k.startswith(ENV_PREFIX)} - fields
                assert not unknown, f"{name}: ConfigMap {doc['metadata']['name']}: {unknown}"
                # A settings ConfigMap holds settings only (it is loaded with envFrom).
                assert all(k.startswith(ENV_PREFIX) for k in doc.get("data", {})), name
        for doc, pod in _pod_specs(docs):
            for c in _containers(pod):
                env = {e["name"] for e in c.get("env", []) if e["name"].startswith(ENV_PREFIX)}
                assert env <= fields, f"{name}: {doc['metadata']['name']}: {env - fields}"


def test_settings_configmap_loads(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap + the secret env vars make a valid Settings (as `recsys serve` would)."""
    for name, docs in rendered.items():
        data = _find_generated(docs, "ConfigMap", "recsys-settings")["data"]
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            monkeypatch.delenv(key)
        for key, value in data.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("RECSYS_DATABASE_URL", "postgresql://u:p@postgres:5432/recsys")
        monkeypatch.setenv("RECSYS_ADMIN_TOKEN", "t")
        settings = load_settings()
        assert settings.grpc_host == "0.0.0.0", name
        assert settings.start_triton is False, name
        kind = InstanceKind.GPU if _is_gpu(name) else InstanceKind.CPU
        assert settings.triton_instance_kind == kind, name


def _settings(docs: list[dict[str, Any]]) -> Settings:
    data = _find_generated(docs, "ConfigMap", "recsys-settings")["data"]
    values = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in data.items()}
    return Settings.model_validate(values)


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def _service_ports(service: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["port"] for p in service["spec"]["ports"]}


def test_orchestrator_ports_and_probes(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        s = _settings(docs)
        c = _container(docs, "Deployment", "orchestrator", "orchestrator")
        assert _ports(c) == {"grpc": s.grpc_port, "metrics": s.metrics_port}, name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == s.grpc_port, (name, probe)
        svc = _find(docs, "Service", "orchestrator")
        assert _service_ports(svc) == {"grpc": s.grpc_port, "metrics": s.metrics_port}, name
        tpl = _find(docs, "Deployment", "orchestrator")["spec"]["template"]
        assert tpl["metadata"]["annotations"]["prometheus.io/port"] == str(s.metrics_port)
        assert tpl["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        # The drain (SHUTDOWN_GRACE_S) plus the preStop pause fit in the grace period.
        pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert tpl["spec"]["terminationGracePeriodSeconds"] > s.shutdown_grace_s + pause, name


def test_dashboard_port(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        s = _settings(docs)
        c = _container(docs, "Deployment", "dashboard", "dashboard")
        assert _ports(c) == {"http": s.dashboard_port}, name
        assert c["args"] == ["--server.port", str(s.dashboard_port)], name
        assert _service_ports(_find(docs, "Service", "dashboard")) == {"http": s.dashboard_port}


def test_triton_ports_models_and_kind(rendered: dict[str, list[dict[str, Any]]]) -> None:
    models = {}
    for config in sorted(MODEL_REPOSITORY.glob("*/config.pbtxt")):
        match = re.search(r'^name:\s*"([^"]+)"', config.read_text(), re.M)
        assert match, config
        models[match.group(1)] = config
        assert match.group(1) == config.parent.name, "Triton needs name == folder name"
    assert models, "no model configs found"
    for name, docs in rendered.items():
        s = _settings(docs)
        expected = {"http": s.triton_http_port, "grpc": s.triton_grpc_port}
        expected["metrics"] = s.triton_metrics_port
        assert expected == TRITON_DEFAULT_PORTS, f"{name}: settings differ from Triton defaults"
        c = _container(docs, "Deployment", "triton", "triton")
        args = c["args"]
        assert c["command"][-1] == "tritonserver", name
        for port_name, port in expected.items():
            assert _flag(args, f"{port_name}-port") == [str(port)], (name, port_name)
        assert _ports(c) == expected, name
        assert _service_ports(_find(docs, "Service", "triton")) == expected, name
        # The orchestrator's TRITON_HOST is the Triton Service.
        assert _find(docs, "Service", s.triton_host)["spec"]["selector"] == {
            "app.kubernetes.io/name": "triton"
        }
        # Readiness follows the model that is always there (user_encoder may have no
        # version yet on a new installation).
        for probe in ("startupProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["path"] == f"/v2/models/{CONTENT_ENCODER}/ready", name
        assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert c["readinessProbe"]["httpGet"]["port"] in ("http", s.triton_http_port)
        tpl = _find(docs, "Deployment", "triton")["spec"]["template"]
        assert tpl["metadata"]["annotations"]["prometheus.io/port"] == str(s.triton_metrics_port)
        # Poll mode: what the shared volume holds is served, new versions and rollbacks are
        # picked up by every replica; a missing user_encoder version must not stop Triton.
        assert CONTENT_ENCODER in models, name
        assert _flag(args, "model-control-mode") == ["poll"], name
        assert not _flag(args, "load-model"), name
        assert _flag(args, "exit-on-error") == ["false"], name
        repo = _flag(args, "model-repository")
        assert repo == ["/models"], name
        # prepare-models renders the instance kind the settings announce.
        init = _container(docs, "Deployment", "triton", "prepare-models")
        assert init["command"] == ["recsys", "prepare-models"], name
        kind_arg = init["args"][init["args"].index("--kind") + 1]
        assert kind_arg == s.triton_instance_kind.value, name
        assert init["args"][init["args"].index("--out") + 1] == "/models", name
        gpus = c["resources"]["limits"].get("nvidia.com/gpu")
        if _is_gpu(name):
            assert s.triton_instance_kind is InstanceKind.GPU, name
            assert gpus == "1", name
            assert tpl["spec"]["nodeSelector"], name
            assert any(t["key"] == "nvidia.com/gpu" for t in tpl["spec"]["tolerations"]), name
        else:
            assert s.triton_instance_kind is InstanceKind.CPU, name
            assert gpus is None, name


def test_autoscaling_and_disruption_budgets(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
        hpas = {
            d["spec"]["scaleTargetRef"]["name"]
            for d in docs
            if d["kind"] == "HorizontalPodAutoscaler"
        }
        assert {"orchestrator", "triton"} <= hpas <= deployments.keys(), name
        pdb_selectors = [
            d["spec"]["selector"]["matchLabels"] for d in docs if d["kind"] == "PodDisruptionBudget"
        ]
        for dep_name, dep in deployments.items():
            labels = dep["spec"]["template"]["metadata"]["labels"]
            assert any(sel.items() <= labels.items() for sel in pdb_selectors), (name, dep_name)


def _policies(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "NetworkPolicy"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_only_the_orchestrator_reaches_triton(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        s = _settings(docs)
        triton_labels = _find(docs, "Deployment", "triton")["spec"]["template"]["metadata"][
            "labels"
        ]
        policies = [
            p
            for p in _policies(docs)
            if "Ingress" in p["spec"]["policyTypes"]
            and _selects(p["spec"]["podSelector"], triton_labels)
        ]
        assert any(p["spec"]["podSelector"] == {} for p in policies), f"{name}: no default deny"
        serving_ports = {s.triton_http_port, s.triton_grpc_port}
        for p in policies:
            for rule in p["spec"].get("ingress", []):
                ports = {port["port"] for port in rule.get("ports", [])}
                peers = rule.get("from")
                assert peers, f"{name}: {p['metadata']['name']} lets anyone reach Triton"
                if ports & serving_ports or not ports:
                    assert peers == [
                        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "orchestrator"}}}
                    ], name


def test_only_database_clients_reach_postgres(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        clients = {
            doc["metadata"]["name"]
            for doc, _ in _pod_specs(docs)
            if doc["spec"]["template"]["metadata"]["labels"].get(DB_CLIENT_LABEL) == "true"
        }
        assert clients == {"orchestrator", "dashboard", "migrate", "model-bootstrap"}, name
        egress_5432 = [
            p
            for p in _policies(docs)
            for rule in p["spec"].get("egress", [])
            if 5432 in {port["port"] for port in rule.get("ports", [])}
        ]
        assert egress_5432, name
        assert all(
            p["spec"]["podSelector"] == {"matchLabels": {DB_CLIENT_LABEL: "true"}}
            for p in egress_5432
        ), name
        # Everything of ours is egress-restricted (DNS only unless allowed above).
        assert any(
            "Egress" in p["spec"]["policyTypes"]
            and p["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "recsys"}}
            for p in _policies(docs)
        ), name
        if _uses_cnpg(docs):
            pg = _find(docs, "NetworkPolicy", "postgres")["spec"]
            assert pg["podSelector"] == {"matchLabels": {"cnpg.io/cluster": "postgres"}}
            client_rules = [r for r in pg["ingress"] if 5432 in {p["port"] for p in r["ports"]}]
            peers = [peer for r in client_rules for peer in r["from"]]
            for peer in peers:
                allowed = (
                    peer.get("podSelector", {}).get("matchLabels")
                    in ({DB_CLIENT_LABEL: "true"}, {"cnpg.io/cluster": "postgres"})
                    or peer.get("namespaceSelector", {})
                    .get("matchLabels", {})
                    .get("kubernetes.io/metadata.name")
                    == "cnpg-system"
                )
                assert allowed, (name, peer)


def test_database_url_comes_from_a_secret(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
        for doc, pod in _pod_specs(docs):
            for c in pod["containers"]:
                env = {e["name"]: e for e in c.get("env", [])}
                for var in ("RECSYS_DATABASE_URL", "RECSYS_ADMIN_TOKEN"):
                    if var not in env:
                        continue
                    ref = env[var]["valueFrom"]["secretKeyRef"]
                    if _uses_cnpg(docs) and var == "RECSYS_DATABASE_URL":
                        # Created by the CloudNativePG operator for the "postgres" Cluster.
                        assert ref == {"name": "postgres-app", "key": "uri"}, name
                    else:
                        assert ref["name"] in secrets, (name, doc["metadata"]["name"], var)
            if doc["metadata"]["name"] in {"orchestrator", "dashboard", "migrate"}:
                envs = {e["name"] for c in pod["containers"] for e in c.get("env", [])}
                assert "RECSYS_DATABASE_URL" in envs, (name, doc["metadata"]["name"])


def test_migrations_job_runs_alembic_with_the_orchestrator_image(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for name, docs in rendered.items():
        job = _find(docs, "Job", "migrate")
        c = job["spec"]["template"]["spec"]["containers"][0]
        assert [*c["command"], *c["args"]] == ["alembic", "upgrade", "head"], name
        orchestrator = _container(docs, "Deployment", "orchestrator", "orchestrator")
        assert c["image"] == orchestrator["image"], name
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync", name


def test_the_first_model_job_writes_where_triton_polls(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for name, docs in rendered.items():
        job = _find(docs, "Job", "model-bootstrap")["spec"]["template"]["spec"]
        triton = _find(docs, "Deployment", "triton")["spec"]["template"]["spec"]
        c = _container(docs, "Job", "model-bootstrap", "bootstrap")
        assert c["command"] == ["recsys", "bootstrap-model"], name
        # Poll mode refuses model-control loads; the export lands where Triton polls.
        assert c["args"] == ["--repository", "/models", "--no-load"], name
        assert c["image"] == _container(docs, "Deployment", "triton", "triton")["image"], name

        def claim(pod: dict[str, Any]) -> str:
            [volume] = [v for v in pod["volumes"] if v["name"] == "model-repository"]
            return str(volume["persistentVolumeClaim"]["claimName"])

        assert claim(job) == claim(triton), name
        pvc = _find(docs, "PersistentVolumeClaim", claim(job))
        if pvc["spec"]["accessModes"] == ["ReadWriteOnce"]:
            assert job["affinity"] == triton["affinity"], f"{name}: RWO volume, other node"


def test_dashboard_logins_come_from_a_secret(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in rendered.items():
        env = {
            e["name"]: e for e in _container(docs, "Deployment", "dashboard", "dashboard")["env"]
        }
        ref = env[f"{ENV_PREFIX}DASHBOARD_USERS"]["valueFrom"]["secretKeyRef"]
        secret = _find(docs, "Secret", ref["name"])
        assert ref["key"] in secret["data"], name
