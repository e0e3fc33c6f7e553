"""How deploy/podman/kube.py turns the rendered podman overlay into what podman plays
(no podman needed): Service names become aliases of the pods they select, the
ExternalName database alias reaches the PostgreSQL pod, Jobs play as their pod template,
nothing is pulled, and every kind is either played or listed as not run."""

from __future__ import annotations

import copy

import pytest

from deploy.podman.check import render
from deploy.podman.kube import NOT_RUN, PLAYED, Manifests
from tests.unit.test_deploy import KUBECTL


@pytest.fixture(scope="module")
def manifests() -> Manifests:
    if KUBECTL is None:
        pytest.skip("kubectl not found (run `make deploy-tools`)")
    return render()


def test_services_become_aliases_of_the_pods_they_select(manifests: Manifests) -> None:
    aliases = {name: w.aliases for name, w in manifests.workloads.items()}
    assert "triton" in aliases["triton"] and "triton.recsys.svc.cluster.local" in aliases["triton"]
    assert "orchestrator" in aliases["orchestrator"]
    assert "dashboard" in aliases["dashboard"]
    # the external-database component's ExternalName "postgres" -> postgres-db's pods
    assert {"postgres", "postgres-db"} <= set(aliases["postgres"])
    # Jobs are selected by no Service
    assert aliases["migrate"] == [] and aliases["model-bootstrap"] == []


def test_jobs_play_as_their_pod_template_and_nothing_is_pulled(manifests: Manifests) -> None:
    job = manifests.workloads["model-bootstrap"]
    pod = job.playable()
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "model-bootstrap"
    spec, template = pod["spec"], job.template["spec"]
    for key in ("restartPolicy", "securityContext", "serviceAccountName"):
        assert spec[key] == template[key], key
    # emptyDirs get the workload's name (podman would share them by name across pods);
    # the model volume (a claim) keeps its own
    volumes = {v["name"] for v in spec["volumes"]}
    assert volumes == {"model-repository", "model-bootstrap-tmp", "model-bootstrap-state"}
    mounts = {m["name"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts == volumes
    assert set(job.empty_dirs()) == volumes - {"model-repository"}
    assert job.pod_name == "model-bootstrap"
    triton = manifests.workloads["triton"]
    assert triton.playable()["kind"] == "Deployment" and triton.pod_name == "triton-pod-0"
    for workload in manifests.workloads.values():
        doc = workload.playable()
        spec = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            assert container["imagePullPolicy"] == "IfNotPresent", workload.name
            assert container["image"].startswith("localhost/recsys/"), workload.name
    # the rendered manifests themselves keep `Always` (checkov's policy)
    assert job.template["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_every_kind_is_played_or_listed_as_not_run(manifests: Manifests) -> None:
    kinds = {d["kind"] for d in manifests.docs}
    assert kinds <= PLAYED | NOT_RUN
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds & NOT_RUN
    odd = [*copy.deepcopy(manifests.docs), {"kind": "StatefulSet", "metadata": {"name": "x"}}]
    with pytest.raises(ValueError, match="StatefulSet"):
        Manifests(odd)


def test_a_service_that_maps_ports_is_refused(manifests: Manifests) -> None:
    docs = copy.deepcopy(manifests.docs)
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "triton")
    service["spec"]["ports"][0]["port"] = 80
    with pytest.raises(ValueError, match="port mapping"):
        Manifests(docs)


def test_init_containers_run_first_as_pods_with_the_workloads_volumes(manifests: Manifests) -> None:
    triton = manifests.workloads["triton"]
    assert "initContainers" not in triton.playable()["spec"]["template"]["spec"]
    (init,) = triton.init_pods()
    assert init["metadata"]["name"] == "triton-init-prepare-models"
    assert init["spec"]["restartPolicy"] == "Never"
    (container,) = init["spec"]["containers"]
    assert container["command"] == ["recsys", "prepare-models"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    # the same volumes as Triton's own container: the claim, and the pod's emptyDirs
    assert mounts == {
        "model-repository": "/models",
        "triton-tmp": "/tmp",
        "triton-state": "/var/lib/recsys",
    }
    assert mounts.keys() <= {v["name"] for v in init["spec"]["volumes"]}
    assert manifests.workloads["orchestrator"].init_pods() == []
