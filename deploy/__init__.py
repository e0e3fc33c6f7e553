"""Deployment tooling that runs on the developer's machine (not part of the served package)."""
