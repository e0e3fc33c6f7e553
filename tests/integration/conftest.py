from __future__ import annotations

from collections.abc import Iterator

import pytest

from serving.client import RecsysClient
from tests.integration.platform import ADMIN_TOKEN, Running, running_platform


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_platform(tmp_path_factory.mktemp("platform")) as running:
        yield running


@pytest.fixture
def client(platform: Running) -> Iterator[RecsysClient]:
    with RecsysClient(platform.target, token=ADMIN_TOKEN, retries=0) as sdk:
        yield sdk


@pytest.fixture
def restore_parameters(client: RecsysClient) -> Iterator[None]:
    """Puts the parameters back (as a new version) after a test that changes them."""
    start = client.get_parameters()["version"]
    yield
    client.rollback_parameters(start, changed_by="tests", reason="restore after a test")
