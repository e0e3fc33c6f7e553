"""Run rendered Kubernetes manifests with ``podman kube play`` (podman 4.3, no cluster).

``podman kube play`` runs Pods and Deployments with their ConfigMaps, volumes and
security contexts; the rest of what a cluster would do is done here, each in the way
Kubernetes defines it, and nothing else is changed:

* Secrets: podman 4.3 stores a played Secret in a form its own ``secretKeyRef`` lookup
  cannot read, so each Secret's ``data`` goes into podman's secret store directly (the
  JSON map podman expects).
* PersistentVolumeClaims become named podman volumes, created once before the pods.
* Services: there is no kube-proxy or cluster DNS. Every name a Service gives its pods
  (``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.cluster.local``) becomes a network
  alias of the pods it selects (ports must equal the container ports: no port mapping
  here); an ExternalName Service pointing at another Service of the namespace adds its
  names to that Service's pods, which is what its DNS CNAME does.
* Init containers run first, each as a pod of its own with the workload's volumes, to
  completion (podman 4.3's own init containers race without systemd: it tries to remove
  one it still sees running, and the play fails).
* Jobs (not a kind podman 4.3 plays) run as their pod template, recreated after a
  failure with the Job's back-off until ``backoffLimit``.
* emptyDirs: podman 4.3 makes a named volume of each, by the volume's name, so pods that
  call theirs ``tmp`` would share one; each gets the workload's name as a prefix (one
  per pod, removed with it), and a ``medium: Memory`` one is a tmpfs of its ``sizeLimit``
  (world-writable, as Kubernetes makes them) created before the pod.
* ``imagePullPolicy: Always`` becomes ``IfNotPresent``: the images were built into the
  local storage and there is no registry to pull from.
* Readiness: podman has no readiness, and its liveness checks need systemd timers; the
  manifests' own ``readinessProbe``s (httpGet, grpc, exec, tcpSocket) are evaluated
  from here against the pod's address.

HorizontalPodAutoscalers, PodDisruptionBudgets, NetworkPolicies, ServiceAccounts and the
Namespace have no podman equivalent: they are checked offline (tests/unit/test_deploy.py).
"""

from __future__ import annotations

import copy
import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.podman.engine import Engine, EngineError

# What podman plays or this module emulates; the rest is listed as not run.
PLAYED = {"Deployment", "Job", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service"}
NOT_RUN = {
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceAccount",
    "Namespace",
}

Doc = dict[str, Any]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def _dns_names(name: str, namespace: str) -> list[str]:
    return [
        name,
        f"{name}.{namespace}",
        f"{name}.{namespace}.svc",
        f"{name}.{namespace}.svc.cluster.local",
    ]


@dataclass
class Workload:
    """A Deployment (played as itself) or a Job (played as its pod template)."""

    doc: Doc
    aliases: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])

    @property
    def template(self) -> Doc:
        return dict(self.doc["spec"]["template"])

    @property
    def pod_name(self) -> str:
        """The pod podman creates: ``<deployment>-pod-0`` (podman 4.3), or the Job's name."""
        return f"{self.name}-pod-0" if self.kind == "Deployment" else self.name

    def container_name(self, container: str) -> str:
        return f"{self.pod_name}-{container}"

    def playable(self) -> Doc:
        """The document given to ``podman kube play``."""
        doc = copy.deepcopy(self.doc)
        if self.kind == "Job":
            template = doc["spec"]["template"]
            doc = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": self.name, "labels": template["metadata"].get("labels", {})},
                "spec": template["spec"],
            }
            spec = doc["spec"]
        else:
            spec = doc["spec"]["template"]["spec"]
        private = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for volume in spec.get("volumes", []):
            if volume["name"] in private:
                volume["name"] = f"{self.name}-{volume['name']}"
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if container.get("imagePullPolicy") == "Always":
                container["imagePullPolicy"] = "IfNotPresent"
            for mount in container.get("volumeMounts", []):
                if mount["name"] in private:
                    mount["name"] = f"{self.name}-{mount['name']}"
        # Init containers run as pods of their own first (init_pods): podman 4.3's own
        # handling races without systemd (it removes one it sees as still running).
        spec.pop("initContainers", None)
        return doc

    def init_pods(self) -> list[Doc]:
        """One Pod per init container, in order, sharing the workload's volumes."""
        played = self.playable()
        spec = played["spec"] if played["kind"] == "Pod" else played["spec"]["template"]["spec"]
        pods = []
        for container in self.template["spec"].get("initContainers", []):
            container = copy.deepcopy(container)
            container["imagePullPolicy"] = "IfNotPresent"
            for mount in container.get("volumeMounts", []):
                if f"{self.name}-{mount['name']}" in self.empty_dirs():
                    mount["name"] = f"{self.name}-{mount['name']}"
            pods.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"{self.name}-init-{container['name']}"},
                    "spec": {**spec, "restartPolicy": "Never", "containers": [container]},
                }
            )
        return pods

    def empty_dirs(self) -> dict[str, Doc]:
        """The podman volume name of each emptyDir -> its emptyDir spec."""
        return {
            f"{self.name}-{v['name']}": v["emptyDir"] or {}
            for v in self.template["spec"].get("volumes", [])
            if "emptyDir" in v
        }


class Manifests:
    """The rendered manifests of one overlay, split into what podman runs."""

    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs
        unknown = {d["kind"] for d in docs} - PLAYED - NOT_RUN
        if unknown:
            raise ValueError(f"kinds neither played nor listed as not run: {sorted(unknown)}")
        self.workloads = {
            d["metadata"]["name"]: Workload(d) for d in docs if d["kind"] in {"Deployment", "Job"}
        }
        self._alias_services()

    @classmethod
    def load(cls, text: str) -> Manifests:
        return cls([d for d in yaml.safe_load_all(text) if d])

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def _selected(self, service: Doc) -> Iterator[Workload]:
        selector = service["spec"].get("selector", {})
        for workload in self.workloads.values():
            if _matches(selector, workload.template["metadata"].get("labels", {})):
                yield workload

    def _alias_services(self) -> None:
        services = {s["metadata"]["name"]: s for s in self.of_kind("Service")}
        for name, service in services.items():
            namespace = service["metadata"].get("namespace", "default")
            spec = service["spec"]
            if spec.get("type") == "ExternalName":
                target = str(spec["externalName"])
                local = {n: s for s in services for n in _dns_names(s, namespace)}
                if target not in local:
                    continue  # a host outside: nothing here to alias
                selected = list(self._selected(services[local[target]]))
            else:
                selected = list(self._selected(service))
                self._check_ports(service, selected)
            for workload in selected:
                workload.aliases += _dns_names(name, namespace)

    @staticmethod
    def _check_ports(service: Doc, selected: list[Workload]) -> None:
        for port in service["spec"].get("ports", []):
            for workload in selected:
                resolved = _container_port(
                    workload.template["spec"], port.get("targetPort", port["port"])
                )
                if resolved != port["port"]:
                    raise ValueError(
                        f"Service {service['metadata']['name']}: port {port['port']} -> "
                        f"{resolved} needs port mapping, which a network alias cannot do"
                    )


def _container_port(pod_spec: Doc, port: int | str) -> int:
    """A probe's or Service's port (a number or a container port's name)."""
    if isinstance(port, int):
        return port
    for container in pod_spec["containers"]:
        for declared in container.get("ports", []):
            if declared.get("name") == port:
                return int(declared["containerPort"])
    raise ValueError(f"no container port named {port!r}")


@dataclass
class Cluster:
    """The played manifests on one podman network, and how to tear them down."""

    engine: Engine
    manifests: Manifests
    network: str
    workdir: Path
    played: list[str] = field(default_factory=list)
    # When each workload was last played (its start-up time counts from there).
    started: dict[str, float] = field(default_factory=dict)

    # -------------------------------------------------------------------------- set-up

    def create_network(self) -> None:
        self.engine.run("podman", "network", "create", self.network)
        # A bridge name of our own: podman numbers bridges from its own (private) list, so
        # the default could collide with another user's podman networks on this machine.
        config = self.engine.root / "networks" / f"{self.network}.json"
        data = json.loads(config.read_text())
        data["network_interface"] = f"rs{abs(hash(self.network)) % 10**10}"[:15]
        config.write_text(json.dumps(data, indent=2))

    def create_secrets_and_volumes(self) -> None:
        for secret in self.manifests.of_kind("Secret"):
            payload = json.dumps(secret.get("data", {}))
            self.engine.run(
                "podman", "secret", "create", secret["metadata"]["name"], "-", input_text=payload
            )
        for claim in self.manifests.of_kind("PersistentVolumeClaim"):
            self.engine.run("podman", "volume", "create", claim["metadata"]["name"])

    def play(self, name: str) -> None:
        """Start one workload (with every ConfigMap: podman resolves envFrom per play)."""
        workload = self.manifests.workloads[name]
        docs = [*self.manifests.of_kind("ConfigMap"), workload.playable()]
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        network = self.network
        if workload.aliases:
            network += ":" + ",".join(f"alias={alias}" for alias in workload.aliases)
        self.played.append(name)
        self.started[name] = time.monotonic()
        self._create_empty_dirs(workload)
        for pod in workload.init_pods():
            self._run_init_pod(pod)
        self.engine.run("podman", "kube", "play", "--network", network, str(path), timeout_s=300)

    def _run_init_pod(self, pod: Doc, timeout_s: float = 600) -> None:
        """Run one init container to completion (exit 0), then remove its pod."""
        name = pod["metadata"]["name"]
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all([*self.manifests.of_kind("ConfigMap"), pod]))
        self.engine.run(
            "podman", "kube", "play", "--network", self.network, str(path), timeout_s=300
        )
        container = f"{name}-{pod['spec']['containers'][0]['name']}"
        code = self.engine.run("podman", "wait", container, timeout_s=timeout_s).stdout.strip()
        logs = self.engine.run("podman", "logs", container, check=False)
        self.engine.run("podman", "pod", "rm", "--force", name, check=False, timeout_s=120)
        if code != "0":
            raise EngineError(f"init container {name} exited {code}:\n{logs.stdout}{logs.stderr}")

    def _create_empty_dirs(self, workload: Workload) -> None:
        """Fresh emptyDirs for a new pod; the ``medium: Memory`` ones as tmpfs volumes."""
        for volume, empty_dir in workload.empty_dirs().items():
            self.engine.run("podman", "volume", "rm", "--force", volume, check=False)
            if empty_dir.get("medium") == "Memory":
                options = _tmpfs_options(empty_dir, workload.template["spec"])
                self.engine.run(
                    "podman",
                    "volume",
                    "create",
                    "--opt",
                    "type=tmpfs",
                    "--opt",
                    "device=tmpfs",
                    "--opt",
                    f"o={options}",
                    volume,
                )

    # -------------------------------------------------------------------------- state

    def pod_ip(self, name: str) -> str:
        workload = self.manifests.workloads[name]
        infra = self.engine.run(
            "podman", "pod", "inspect", workload.pod_name, "--format", "{{.InfraContainerID}}"
        ).stdout.strip()
        fmt = f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}'
        return self.engine.run("podman", "inspect", infra, "--format", fmt).stdout.strip()

    def container_state(self, name: str, container: str) -> tuple[str, int]:
        """(status, exit code) of one container of a workload."""
        workload = self.manifests.workloads[name]
        out = self.engine.run(
            "podman",
            "inspect",
            workload.container_name(container),
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
        ).stdout.split()
        return out[0], int(out[1])

    def logs(self, name: str, container: str, tail: int = 40) -> str:
        workload = self.manifests.workloads[name]
        result = self.engine.run(
            "podman", "logs", "--tail", str(tail), workload.container_name(container), check=False
        )
        return result.stdout + result.stderr

    def ready(self, name: str) -> bool:
        """Every container's readinessProbe passes (a container without one: running)."""
        workload = self.manifests.workloads[name]
        spec = workload.template["spec"]
        for container in spec["containers"]:
            status, _ = self.container_state(name, container["name"])
            if status != "running":
                return False
            probe = container.get("readinessProbe")
            if probe and not self._probe(workload, spec, container["name"], probe):
                return False
        return True

    def _probe(self, workload: Workload, spec: Doc, container: str, probe: Doc) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            result = self.engine.run(
                "podman",
                "exec",
                workload.container_name(container),
                *probe["exec"]["command"],
                check=False,
                timeout_s=timeout + 5,
            )
            return result.returncode == 0
        ip = self.pod_ip(workload.name)
        if "httpGet" in probe:
            get = probe["httpGet"]
            url = f"http://{ip}:{_container_port(spec, get['port'])}{get.get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    return 200 <= int(response.status) < 400
            except OSError:
                return False
        if "grpc" in probe:
            return _grpc_serving(
                f"{ip}:{probe['grpc']['port']}", probe["grpc"].get("service", ""), timeout
            )
        if "tcpSocket" in probe:
            try:
                port = _container_port(spec, probe["tcpSocket"]["port"])
                socket.create_connection((ip, port), timeout=timeout).close()
                return True
            except OSError:
                return False
        raise ValueError(f"unsupported probe {sorted(probe)}")

    def wait_ready(self, name: str, timeout_s: float) -> float:
        """Seconds from the workload's play (init containers included) until its readiness
        probes pass."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            try:
                if self.ready(name):
                    return time.monotonic() - self.started.get(name, started)
            except EngineError:
                pass  # the pod is being (re)created
            time.sleep(2)
        raise TimeoutError(f"{name} not ready after {timeout_s:.0f} s:\n{self.all_logs(name)}")

    def run_job(self, name: str, timeout_s: float, max_backoff_s: float = 60) -> int:
        """Run a Job to completion the way the Job controller does; returns the attempts."""
        workload = self.manifests.workloads[name]
        limit = int(workload.doc["spec"].get("backoffLimit", 6))
        container = workload.template["spec"]["containers"][0]["name"]
        deadline = time.monotonic() + timeout_s
        for attempt in range(limit + 1):
            self.play(name)
            while time.monotonic() < deadline:
                status, code = self.container_state(name, container)
                if status in {"exited", "stopped"}:
                    break
                time.sleep(2)
            else:
                raise TimeoutError(f"Job {name} still running after {timeout_s:.0f} s")
            if code == 0:
                return attempt + 1
            self.remove(name)
            time.sleep(min(10 * 2**attempt, max_backoff_s, max(deadline - time.monotonic(), 0)))
            if time.monotonic() >= deadline:
                break
        raise RuntimeError(f"Job {name} failed:\n{self.all_logs(name)}")

    def all_logs(self, name: str) -> str:
        """The last lines of each container of a workload."""
        spec = self.manifests.workloads[name].template["spec"]
        names = [c["name"] for c in [*spec.get("initContainers", []), *spec["containers"]]]
        return "\n".join(f"--- {c}\n{self.logs(name, c)}" for c in names)

    # -------------------------------------------------------------------------- teardown

    def remove(self, name: str) -> None:
        path = self.workdir / f"{name}.yaml"
        if path.exists():
            self.engine.run("podman", "kube", "down", str(path), check=False, timeout_s=120)
        self._remove_pod(self.manifests.workloads[name])

    def _remove_pod(self, workload: Workload) -> None:
        self.engine.run(
            "podman",
            "pod",
            "rm",
            "--force",
            "--ignore",
            workload.pod_name,
            check=False,
            timeout_s=120,
        )
        for volume in workload.empty_dirs():
            self.engine.run("podman", "volume", "rm", "--force", volume, check=False)

    def teardown(self) -> list[str]:
        """Remove every pod, volume, secret and the network; returns what was left over."""
        for name in reversed(self.played):
            self.remove(name)
        for claim in self.manifests.of_kind("PersistentVolumeClaim"):
            self.engine.run(
                "podman", "volume", "rm", "--force", claim["metadata"]["name"], check=False
            )
        for secret in self.manifests.of_kind("Secret"):
            self.engine.run("podman", "secret", "rm", secret["metadata"]["name"], check=False)
        self.engine.run("podman", "network", "rm", "--force", self.network, check=False)
        return self.leftovers()

    def leftovers(self) -> list[str]:
        """Pods, containers, volumes, secrets and networks of ours still there."""
        left = []
        for what, fmt in (
            (("pod", "ps"), "{{.Name}}"),
            (("ps", "--all"), "{{.Names}}"),
            (("volume", "ls"), "{{.Name}}"),
            (("secret", "ls"), "{{.Name}}"),
        ):
            out = self.engine.run("podman", *what, "--format", fmt, check=False).stdout
            left += [f"{what[0]} {line}" for line in out.split() if line]
        networks = self.engine.run("podman", "network", "ls", "--format", "{{.Name}}").stdout
        left += [f"network {n}" for n in networks.split() if n == self.network]
        return left


def _tmpfs_options(empty_dir: Doc, pod_spec: Doc) -> str:
    """Mount options of a ``medium: Memory`` emptyDir: owned by the pod's user and fsGroup
    (podman's mode option is not applied to tmpfs volumes, its uid/gid are), at most
    ``sizeLimit`` (podman reads ``size`` as a quota, tmpfs's ``nr_blocks`` passes)."""
    context = pod_spec.get("securityContext", {})
    uid = context.get("runAsUser", 0)
    gid = context.get("fsGroup", context.get("runAsGroup", uid))
    options = f"uid={uid},gid={gid}"
    limit = str(empty_dir.get("sizeLimit", ""))
    factors = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in factors.items():
        if limit.endswith(suffix):
            options += f",nr_blocks={int(limit[: -len(suffix)]) * factor // 4096}"
    return options


def _grpc_serving(target: str, service: str, timeout_s: float) -> bool:
    """The grpc probe: grpc.health.v1 Check answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
