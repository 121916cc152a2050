"""Value matchers with Istio's pattern language.

A value is matched exactly, by prefix (``abc*``), by suffix (``*abc``) or for
presence (``*``). What presence means depends on the field: for paths, claims and
principals the value must be non-empty; for methods, hosts and headers it must only
exist. A ``*`` anywhere else is a literal character, as in Istio.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any

from authz_server.errors import FieldError

StringTest = Callable[[str], bool]

# What a {*} or {**} operator matches: Envoy's uri_template path characters, which
# include "=" and "*" (Envoy 1.40 matches both inside a segment).
PCHAR = r"A-Za-z0-9\-._~%!$&'()+,;:@=*"
SEGMENT = f"[{PCHAR}]+"
ANY_SEGMENTS = f"[{PCHAR}/]*"
TEMPLATE_LITERAL = re.compile(f"[{PCHAR}/]*")


def pattern(value: str, *, empty_matches: bool, fold_case: bool = False) -> StringTest:
    """Compile one Istio string pattern into a test."""
    if fold_case:
        value = value.lower()
    if value == "*":
        return (lambda _: True) if empty_matches else bool
    if value.startswith("*"):
        suffix = value[1:]
        return lambda text: text.endswith(suffix)
    if value.endswith("*"):
        prefix = value[:-1]
        return lambda text: text.startswith(prefix)
    return lambda text: text == value


def any_of(tests: Sequence[StringTest]) -> StringTest:
    """A test that passes when one of ``tests`` passes."""
    if len(tests) == 1:
        return tests[0]
    return lambda text: any(test(text) for test in tests)


def path_pattern(value: str, field: str) -> StringTest:
    """A ``paths`` value: a pattern, or a template using ``{*}`` and ``{**}``."""
    if "{" not in value and "}" not in value:
        return pattern(value, empty_matches=False)
    regex = re.compile(_template_regex(value, field))
    return lambda path: regex.fullmatch(path) is not None


def _template_regex(template: str, field: str) -> str:
    if not template.startswith("/"):
        raise FieldError(field, "a path template must start with '/'")
    parts = []
    seen_any = False
    for segment in template[1:].split("/"):
        if seen_any and segment in ("{*}", "{**}"):
            raise FieldError(field, "'{**}' must be the last operator of a template")
        if segment == "{*}":
            parts.append(SEGMENT)
        elif segment == "{**}":
            parts.append(ANY_SEGMENTS)
            seen_any = True
        elif TEMPLATE_LITERAL.fullmatch(segment):
            parts.append(re.escape(segment))
        else:
            raise FieldError(field, f"{template!r} is not a valid path template")
    return "/" + "/".join(parts)


def cidr(value: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IP address or CIDR block."""
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise FieldError(field, f"{value!r} is not an IP address or CIDR") from None


def ip_test(values: Sequence[str], field: str) -> StringTest:
    """A test that an IP address lies in one of the blocks."""
    networks = [cidr(value, f"{field}[{i}]") for i, value in enumerate(values)]

    def contains(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    return contains


def port(value: str, field: str) -> int:
    """A port number in [0, 65535]."""
    if not value.isdigit() or int(value) > 65535:
        raise FieldError(field, f"{value!r} is not a port number")
    return int(value)


def claim_matches(claim: Any, test: StringTest) -> bool:
    """A claim matches when it is a matching string, or a list holding one."""
    if isinstance(claim, str):
        return test(claim)
    if isinstance(claim, list):
        return any(isinstance(item, str) and test(item) for item in claim)
    return False


def spiffe_pattern(value: str) -> StringTest:
    """``principals``: a value without ``spiffe://``, compared with the full URI."""
    if value == "*":
        return bool
    if value.startswith("*"):
        suffix = value[1:]
        return lambda uri: uri.startswith("spiffe://") and uri.endswith(suffix)
    return pattern("spiffe://" + value, empty_matches=False)


def regex_test(expression: str) -> StringTest:
    """A full-match regular expression test."""
    compiled = re.compile(expression)
    return lambda text: compiled.fullmatch(text) is not None


def namespace_test(value: str) -> StringTest:
    """``namespaces``: the namespace part of a SPIFFE identity; ``*`` is a glob."""
    glob = ".*".join(re.escape(part) for part in value.split("*"))
    return regex_test(f".*/ns/{glob}/.*")


def service_account_test(value: str, policy_namespace: str, field: str) -> StringTest:
    """``serviceAccounts``: ``ns/sa``, or ``sa`` in the policy's namespace."""
    if "*" in value or value.count("/") > 1:
        raise FieldError(field, "a service account is 'name' or 'namespace/name'")
    namespace, _, name = value.rpartition("/")
    namespace = re.escape(namespace or policy_namespace)
    return regex_test(f"spiffe://.+/ns/{namespace}/(.+/|)sa/{re.escape(name)}(/.+)?")
