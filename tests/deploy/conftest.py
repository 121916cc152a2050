"""Fixtures for the deployment tests; the stack itself is in ``deploy_stack``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deploy_stack import Proxies, running_proxies


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxies]:
    with running_proxies(tmp_path_factory.mktemp("deploy-stack")) as stack:
        yield stack
