"""free_port never hands out a port twice, even when the OS offers the same one again
(the CI run that sank a stop: metrics_port and triton_metrics_port were both 49979)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from serving import stack


class _OfferedPorts:
    """A socket stand-in whose bind(0) yields the next port from a fixed script."""

    def __init__(self, offers: Iterator[int]) -> None:
        self._offers = offers
        self._port = 0

    def __enter__(self) -> _OfferedPorts:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def bind(self, address: tuple[str, int]) -> None:
        self._port = next(self._offers)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self._port)


def test_a_port_offered_twice_is_handed_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    offers = iter([41001, 41001, 41001, 41002, 41001, 41003])

    def offered_socket(*args: Any, **kwargs: Any) -> _OfferedPorts:
        return _OfferedPorts(offers)

    monkeypatch.setattr(stack, "_handed_out", set())
    monkeypatch.setattr(socket, "socket", offered_socket)
    assert [stack.free_port() for _ in range(3)] == [41001, 41002, 41003]


def test_side_by_side_settings_get_distinct_ports(tmp_path: Any) -> None:
    settings = stack.side_by_side_settings(tmp_path)
    ports = [getattr(settings, name) for name in stack.PORT_SETTINGS]
    assert len(set(ports)) == len(ports)
