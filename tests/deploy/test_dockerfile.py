"""The Dockerfile cannot be built here (no container engine); its content is checked:
pinned base, multi-stage, non-root, the entrypoint and the health check work."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from harness import REPO_ROOT

from authz_server.cli import build_parser
from authz_server.server import Server

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PINNED = re.compile(
    r"^[\w./-]+(:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$"
)
BUILD_TOOLS = ("gcc", "build-essential", "make ", "g++", "clang", "pip install")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, argument = line.partition(" ")
            result.append(Instruction(keyword.upper(), argument.strip()))
    return result


def stages() -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for instruction in instructions():
        if instruction.keyword == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def build_args() -> dict[str, str]:
    args = {}
    for instruction in instructions():
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, value = instruction.argument.partition("=")
            args[name] = value
    return args


def exec_form(instruction: Instruction) -> list[str]:
    prefix, _, rest = instruction.argument.partition("CMD ")
    value = json.loads(rest if instruction.keyword == "HEALTHCHECK" else prefix)
    assert isinstance(value, list), f"{instruction.keyword} is not in exec form"
    return [str(item) for item in value]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    (found,) = [i for i in stage if i.keyword == keyword]
    return found


def test_every_base_image_is_pinned_to_an_exact_slim_version() -> None:
    args = build_args()
    for stage in stages():
        image = stage[0].argument.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)

        assert PINNED.match(image), image
        assert "slim" in image


def test_build_is_multi_stage_and_the_final_stage_has_no_build_tools() -> None:
    *builders, final = stages()
    final_text = " ".join(i.argument for i in final)

    assert builders
    assert any("--from=" in i.argument for i in final if i.keyword == "COPY"), (
        "the final stage copies the built venv"
    )
    for tool in BUILD_TOOLS:
        assert tool not in final_text


def test_final_stage_runs_as_a_non_root_user() -> None:
    final = stages()[-1]
    user = only(final, "USER").argument
    uid = user.split(":")[0]

    assert uid not in ("root", "0")
    assert uid.isdigit(), "numeric, so runAsNonRoot can verify it"
    created = " ".join(i.argument for i in final if i.keyword == "RUN")
    assert f"--uid {uid}" in created


def test_entrypoint_is_authz_server_serve_from_the_installed_package() -> None:
    command = exec_form(only(stages()[-1], "ENTRYPOINT"))
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}

    assert command[:2] == ["authz-server", "serve"]
    assert scripts["authz-server"] == "authz_server.cli:main"
    assert build_parser().parse_args(command[1:]).command == "serve"


def test_image_environment_names_are_read_by_serve() -> None:
    final = stages()[-1]
    environment = " ".join(i.argument for i in final if i.keyword == "ENV")
    names = set(re.findall(r"\b(AUTHZ_\w+)=", environment))
    done = subprocess.run(
        [sys.executable, "-m", "authz_server", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert names
    assert all(name in done.stdout for name in names)


def test_health_check_command_reports_a_serving_server(tmp_path: Path) -> None:
    command = exec_form(only(stages()[-1], "HEALTHCHECK"))
    assert command[:2] == ["python", "-c"]
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: all, namespace: default}\nspec: {rules: [{}]}\n",
        encoding="utf-8",
    )

    def probe(listen: str) -> int:
        env = {**os.environ, "AUTHZ_GRPC_LISTEN": listen}
        return subprocess.run(
            [sys.executable, "-c", command[2]], env=env, timeout=20, check=False
        ).returncode

    server = Server(grpc_listen="127.0.0.1:0")
    port = server.start()
    try:
        not_loaded = probe(f"0.0.0.0:{port}")
        server.load([str(policy)])
        loaded = probe(f"0.0.0.0:{port}")
    finally:
        server.stop(grace=0)

    assert (not_loaded, loaded) == (1, 0)


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    copied = {
        source
        for stage in stages()
        for i in stage
        if i.keyword == "COPY" and not i.argument.startswith("--from")
        for source in i.argument.split()[:-1]
    }

    assert "*" in lines
    for source in copied:
        assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in lines}


@pytest.mark.parametrize("name", ["pyproject.toml", "README.md", "authz_server"])
def test_build_context_files_exist(name: str) -> None:
    assert (REPO_ROOT / name).exists()
