"""One Envoy + authz-server + echo stack for the end-to-end tests.

Besides the demo front proxy's catch-all route, the stack has two virtual hosts
that pass ``context_extensions`` to authz-server, the way a user scopes policies
per route: ``httpbin.foo`` (labels ``app=httpbin, version=v1``) and
``*.httpbin.com`` (label ``istio=ingressgateway``, an ingress gateway).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from harness import Stack, running_stack

PER_ROUTE = (
    "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
)
SCOPES = {
    "httpbin": (["httpbin.foo", "httpbin.foo:*"], {"app": "httpbin", "version": "v1"}),
    "gateway": (["*.httpbin.com"], {"istio": "ingressgateway"}),
}


def add_scoped_hosts(config: dict[str, Any]) -> None:
    """Put a virtual host per scope in front of the catch-all one."""
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][
        0
    ]
    hosts = manager["typed_config"]["route_config"]["virtual_hosts"]
    for name, (domains, labels) in SCOPES.items():
        per_route = {
            "@type": PER_ROUTE,
            "check_settings": {"context_extensions": labels},
        }
        hosts.insert(
            0,
            {
                "name": name,
                "domains": domains,
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "route": {"cluster": "echo"},
                        "typed_per_filter_config": {
                            "envoy.filters.http.ext_authz": per_route
                        },
                    }
                ],
            },
        )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("e2e"), add_scoped_hosts) as running:
        yield running
