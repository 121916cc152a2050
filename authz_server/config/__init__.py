"""Reading config: files and directories of Istio YAML into typed resources."""

from __future__ import annotations

from authz_server.config.model import (
    AuthorizationPolicy,
    Config,
    RequestAuthentication,
)
from authz_server.config.resources import parse_document
from authz_server.config.source import config_files, read_documents
from authz_server.errors import ConfigError, ConfigProblem

__all__ = ["load", "read"]


def read(paths: list[str]) -> tuple[Config, list[ConfigProblem]]:
    """Read every document under ``paths``: the resources and all problems found."""
    problems: list[ConfigProblem] = []
    authentications: list[RequestAuthentication] = []
    policies: list[AuthorizationPolicy] = []

    files = config_files(paths, problems)
    for file in files:
        for document in read_documents(file, problems):
            resource = parse_document(document, problems)
            if isinstance(resource, RequestAuthentication):
                authentications.append(resource)
            elif isinstance(resource, AuthorizationPolicy):
                policies.append(resource)

    if not files and not problems:
        problems.append(
            ConfigProblem(", ".join(paths), None, "", "no YAML files found")
        )
    config = Config(tuple(authentications), tuple(policies), tuple(map(str, files)))
    return config, problems


def load(paths: list[str]) -> Config:
    """Read every document under ``paths``; raise ConfigError listing all problems."""
    config, problems = read(paths)
    if problems:
        raise ConfigError(problems)
    return config
