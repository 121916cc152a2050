"""One config generation, compiled: the immutable input of every decision.

A reload builds a new :class:`Snapshot` beside the old one and swaps a reference;
a check keeps the snapshot it started with. Key sets are refreshed in the background
by the :class:`~authz_server.authn.jwks.KeyRegistry` the snapshot points into.

Scoping outside a mesh: a resource applies to a request when

* its namespace is the root namespace, or the request names no namespace, or the
  request's namespace (``context_extensions["namespace"]``, else the namespace in
  the destination's SPIFFE identity) is the resource's; and
* it has no ``selector``, or every ``matchLabels`` entry is present with the same
  value in the request's ``context_extensions``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from authz_server import config as config_files
from authz_server.authn.authenticate import (
    DEFAULT_SPACE_DELIMITED,
    Authenticator,
    CacheStats,
    Provider,
)
from authz_server.authn.extract import locations_for
from authz_server.authn.jwks import InlineKeys, KeyRegistry, KeySource
from authz_server.authn.keys import KeySetError, parse_key_set
from authz_server.authn.token import sanitize_audience
from authz_server.authz.policy import CompiledPolicy, compile_policy
from authz_server.config.model import Config, JwtRule, Origin, RequestAuthentication
from authz_server.errors import ConfigError, ConfigProblem, FieldError
from authz_server.request import Request
from authz_server.settings import Settings

_generations = itertools.count(1)
SCOPE_CACHE_SIZE = 1024


@dataclass(frozen=True)
class _Scoped:
    namespace: str
    match_labels: dict[str, str] | None


@dataclass(frozen=True)
class Scope:
    """The rules and policies that apply to one request."""

    providers: tuple[Provider, ...]
    policies: tuple[CompiledPolicy, ...]


@dataclass(eq=False)
class Snapshot:
    """Compiled providers and policies of one config generation."""

    config: Config
    settings: Settings
    providers: tuple[tuple[_Scoped, Provider], ...]
    policies: tuple[CompiledPolicy, ...]
    authenticator: Authenticator
    generation: int = field(default_factory=lambda: next(_generations))

    def __post_init__(self) -> None:
        self._scopes: dict[tuple[object, ...], Scope] = {}

    @property
    def key_sources(self) -> set[KeySource]:
        return {provider.keys for _, provider in self.providers}

    def scope(self, request: Request) -> Scope:
        """The providers and policies that apply to ``request`` (cached by context)."""
        namespace = request_namespace(request)
        context = request.context
        key = (namespace, tuple(sorted(context.items())) if context else ())
        cached = self._scopes.get(key)
        if cached is not None:
            return cached

        scope = Scope(
            tuple(p for s, p in self.providers if self._applies(s, namespace, request)),
            tuple(p for p in self.policies if self._applies(p, namespace, request)),
        )
        if len(self._scopes) >= SCOPE_CACHE_SIZE:
            self._scopes.clear()  # many distinct contexts: start over, stay bounded
        self._scopes[key] = scope
        return scope

    def _applies(
        self, scoped: _Scoped | CompiledPolicy, namespace: str, request: Request
    ) -> bool:
        if namespace and scoped.namespace not in (
            namespace,
            self.settings.root_namespace,
        ):
            return False
        return _selected(scoped.match_labels, request.context)


def request_namespace(request: Request) -> str:
    """The namespace a request is for, or "" when it names none."""
    namespace = request.context.get("namespace", "")
    if namespace:
        return namespace
    _, found, rest = request.destination_principal.partition("/ns/")
    return rest.split("/", 1)[0] if found else ""


def _selected(labels: dict[str, str] | None, context: Mapping[str, str]) -> bool:
    if labels is None:
        return True
    return all(context.get(key) == value for key, value in labels.items())


def load(
    paths: list[str],
    registry: KeyRegistry,
    settings: Settings,
    stats: CacheStats | None = None,
) -> Snapshot:
    """Read and compile ``paths``; raise ConfigError listing every problem of both."""
    loaded, problems = config_files.read(paths)
    return build(loaded, registry, settings, stats, problems)


def build(
    config: Config,
    registry: KeyRegistry,
    settings: Settings,
    stats: CacheStats | None = None,
    problems: list[ConfigProblem] | None = None,
) -> Snapshot:
    """Compile ``config``; raise ConfigError listing every value we cannot use
    (after any ``problems`` already found while reading it)."""
    problems = list(problems or [])
    providers = _providers(config, registry, problems)
    policies = []
    for policy in config.authorization_policies:
        try:
            policies.append(compile_policy(policy))
        except FieldError as err:
            problems.append(_problem(policy.origin, err.field, err.problem))
    if problems:
        raise ConfigError(problems)

    authenticator = Authenticator(settings.limits, stats)
    return Snapshot(config, settings, tuple(providers), tuple(policies), authenticator)


def _providers(
    config: Config, registry: KeyRegistry, problems: list[ConfigProblem]
) -> list[tuple[_Scoped, Provider]]:
    entries = []
    for resource in config.request_authentications:
        scoped = _Scoped(resource.origin.namespace, resource.selector.match_labels)
        for rule in resource.jwt_rules:
            provider = _provider(resource, rule, registry, problems)
            if provider is not None:
                entries.append((scoped, provider))
    # Istio sorts the merged rules of all applicable resources by issuer.
    return sorted(entries, key=lambda entry: entry[1].rule.issuer)


def _provider(
    resource: RequestAuthentication,
    rule: JwtRule,
    registry: KeyRegistry,
    problems: list[ConfigProblem],
) -> Provider | None:
    keys = _key_source(resource.origin, rule, registry, problems)
    if keys is None:
        return None
    return Provider(
        name=f"{resource.origin.policy_id} {rule.field_path}",
        rule=rule,
        locations=locations_for(rule),
        audiences=frozenset(sanitize_audience(aud) for aud in rule.audiences),
        space_delimited=frozenset(
            DEFAULT_SPACE_DELIMITED + rule.space_delimited_claims
        ),
        keys=keys,
    )


def _key_source(
    origin: Origin, rule: JwtRule, registry: KeyRegistry, problems: list[ConfigProblem]
) -> KeySource | None:
    if rule.jwks:
        try:
            return InlineKeys(parse_key_set(rule.jwks, allow_symmetric=True))
        except KeySetError as err:
            problems.append(_problem(origin, f"{rule.field_path}.jwks", str(err)))
            return None
    if rule.jwks_uri:
        return registry.remote(rule.jwks_uri, rule.timeout_seconds)
    return registry.remote(rule.issuer, rule.timeout_seconds, discovery=True)


def _problem(origin: Origin, field_path: str, text: str) -> ConfigProblem:
    return ConfigProblem(origin.file, origin.document, field_path, text)
