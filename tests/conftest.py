"""Shared test helpers."""

from serving.stack import free_port

__all__ = ["free_port"]
