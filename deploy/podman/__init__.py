"""Build the images and run the Kubernetes manifests with podman, without Docker or a cluster.

``python -m deploy.podman.images`` (``make images``) builds every image of deploy/docker/
with buildah on a Debian 12 base made locally with mmdebstrap; ``python -m
deploy.podman.check`` (``make deploy-check``) plays the ``podman`` overlay with
``podman kube play`` and checks the platform through its public API.
"""
