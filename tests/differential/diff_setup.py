"""Building both sides of the differential suite from one :class:`Policy`.

* :func:`istio_yaml`: the RequestAuthentication + AuthorizationPolicy documents
  authz-server loads (the JWKS inlined with ``jwks``);
* :func:`write_native_config`: one Envoy bootstrap with a listener per policy,
  running ``jwt_authn`` -> RBAC DENY -> RBAC ALLOW as istiod orders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from diff_policies import NAMESPACE, POLICIES, Policy
from diff_requests import KID
from harness import free_port
from native_rbac import bootstrap, jwks_text, jwt_authn, listener, rbac

from authz_server import tokens
from authz_server.demo.envoy_proc import EnvoyProcess


@dataclass(frozen=True)
class Keys:
    signing: tokens.PrivateKey
    other: tokens.PrivateKey

    @property
    def jwks(self) -> str:
        return jwks_text({"keys": [tokens.public_jwk(self.signing, KID)]})


@dataclass(frozen=True)
class Native:
    config_path: Path
    ports: dict[str, int]
    envoy: EnvoyProcess


def jwt_rules(policy: Policy, jwks: str) -> list[dict[str, Any]]:
    return [{**rule, "jwks": jwks} for rule in policy.jwt_rules]


def istio_yaml(policy: Policy, jwks: str) -> str:
    """The policy's RequestAuthentication and AuthorizationPolicies as YAML."""
    documents: list[dict[str, Any]] = [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": {"name": f"{policy.name}-jwt", "namespace": NAMESPACE},
            "spec": {"jwtRules": jwt_rules(policy, jwks)},
        }
    ]
    documents += [
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }
        for name, spec in policy.specs
    ]
    return yaml.safe_dump_all(documents, sort_keys=False)


def native_filters(policy: Policy, jwks: str) -> list[dict[str, Any]]:
    """jwt_authn, then RBAC DENY, then RBAC ALLOW (Istio's filter order)."""
    filters = [jwt_authn(jwt_rules(policy, jwks))]
    if policy.deny is not None:
        filters.append(rbac("DENY", policy.deny))
    if policy.allow is not None:
        filters.append(rbac("ALLOW", policy.allow))
    return filters


def write_native_config(directory: Path, jwks: str) -> tuple[Path, dict[str, int]]:
    ports = {policy.name: free_port() for policy in POLICIES}
    listeners = [
        listener(f"native-{p.name}", ports[p.name], native_filters(p, jwks))
        for p in POLICIES
    ]
    path = directory / "native-jwt-rbac.yaml"
    config = bootstrap(free_port(), listeners)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path, ports
