"""Config hot reload under a running server: edits, new and removed files, the
ConfigMap symlink swap, SIGHUP-style reloads, and invalid edits that change nothing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from checks import Result, check_request, policy
from envoy.service.auth.v3 import external_auth_pb2_grpc
from operations_support import eventually

from authz_server.server import Server
from authz_server.settings import Settings

ALLOW_A = policy("ALLOW", {"to": [{"operation": {"paths": ["/a"]}}]}, name="p")
ALLOW_B = policy("ALLOW", {"to": [{"operation": {"paths": ["/b"]}}]}, name="p")
DENY_C = policy("DENY", {"to": [{"operation": {"paths": ["/c"]}}]}, name="deny-c")


def dump(path: Path, *documents: object) -> None:
    text = yaml.safe_dump_all(documents)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


Ask = Callable[[str], int]
Serve = Callable[[list[str]], tuple[Server, Ask]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    servers: list[tuple[Server, grpc.Channel]] = []

    def start(paths: list[str]) -> tuple[Server, Ask]:
        server = Server("127.0.0.1:0", Settings(watch_interval_seconds=0.1))
        server.load(paths)
        port = server.start(watch=True)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        servers.append((server, channel))
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)

        def ask(path: str) -> int:
            return Result(stub.Check(check_request(path), timeout=10)).status

        return server, ask

    yield start
    for server, channel in servers:
        channel.close()
        server.stop(grace=0)


def generation_of(server: Server) -> int:
    assert server.snapshot is not None
    return server.snapshot.generation


def test_editing_a_file_applies_the_new_policy(tmp_path: Path, serve: Serve) -> None:
    file = tmp_path / "policy.yaml"
    dump(file, ALLOW_A)
    server, ask = serve([str(file)])
    assert (ask("/a"), ask("/b")) == (200, 403)
    generation = generation_of(server)

    dump(file, ALLOW_B)

    eventually(lambda: ask("/b") == 200)
    assert ask("/a") == 403
    assert generation_of(server) > generation


def test_files_added_and_removed_in_a_directory(tmp_path: Path, serve: Serve) -> None:
    dump(tmp_path / "a.yaml", ALLOW_A)
    _, ask = serve([str(tmp_path)])
    assert ask("/c") == 403

    dump(
        tmp_path / "b.yaml",
        policy("ALLOW", {"to": [{"operation": {"paths": ["/c"]}}]}, name="c"),
    )
    eventually(lambda: ask("/c") == 200)

    (tmp_path / "b.yaml").unlink()
    eventually(lambda: ask("/c") == 403)


def test_configmap_symlink_swap(tmp_path: Path, serve: Serve) -> None:
    first = tmp_path / "..2026_12_03_00_00_00.1"
    first.mkdir()
    dump(first / "policy.yaml", ALLOW_A)
    os.symlink(first.name, tmp_path / "..data")
    os.symlink("..data/policy.yaml", tmp_path / "policy.yaml")
    _, ask = serve([str(tmp_path)])
    assert ask("/a") == 200

    second = tmp_path / "..2026_12_03_00_00_00.2"
    second.mkdir()
    dump(second / "policy.yaml", ALLOW_B)
    os.symlink(second.name, tmp_path / "..data_tmp")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    eventually(lambda: ask("/b") == 200)
    assert ask("/a") == 403


def test_invalid_edit_keeps_the_old_config(tmp_path: Path, serve: Serve) -> None:
    file = tmp_path / "policy.yaml"
    dump(file, ALLOW_A)
    server, ask = serve([str(file)])
    generation = generation_of(server)

    file.write_text("kind: AuthorizationPolicy\nspec: {rules: [{bogus: 1}]}\n")
    eventually(lambda: server.metrics.reloads.labels("failure")._value.get() >= 1)

    assert ask("/a") == 200 and ask("/b") == 403
    assert generation_of(server) == generation


def test_reload_reads_the_same_paths_again(tmp_path: Path, serve: Serve) -> None:
    file = tmp_path / "policy.yaml"
    dump(file, DENY_C)
    server, ask = serve([str(file)])
    assert ask("/c") == 403

    dump(file, ALLOW_A)
    assert server.reload() is True
    assert ask("/c") == 403 and ask("/a") == 200
    file.write_text("kind: Nope\n")
    assert server.reload() is False
    assert ask("/a") == 200
