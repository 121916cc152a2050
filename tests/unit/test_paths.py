"""Path normalisation: Istio's BASE view, the stricter views, and rejections."""

from __future__ import annotations

import pytest

from authz_server.authz.paths import normalise, views
from authz_server.errors import PathRejected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/some%2fdata/%61%62%63", "/some%2fdata/abc"),
        ("/public/./data/abc/../xyz", "/public/data/xyz"),
        ("/public/../admin", "/admin"),
        ("/../admin", "/admin"),
        ("/a\\b", "/a/b"),
        ("/%7Euser/%2d%2E%5F", "/~user/-._"),
        ("/a//b", "/a//b"),
        ("/x/%2e%2e/admin", "/admin"),
        ("/a/%3F", "/a/%3F"),
    ],
)
def test_base_normalisation_matches_istio(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["/a%00b", "/a\x00", "/a b", "/a\r\nx", "/caf\u00e9", "/a%zz", "/a%4", "relative"],
)
def test_unsafe_paths_are_rejected(raw: str) -> None:
    with pytest.raises(PathRejected):
        normalise(raw)


@pytest.mark.parametrize(
    ("raw", "every", "allow"),
    [
        ("/a/b", ("/a/b",), ("/a/b",)),
        ("//admin", ("//admin", "/admin"), ("//admin",)),
        (
            "/data%2Fsecret",
            ("/data%2Fsecret", "/data/secret"),
            ("/data%2Fsecret", "/data/secret"),
        ),
        (
            "/data/secret;v=1",
            ("/data/secret;v=1", "/data/secret"),
            ("/data/secret;v=1", "/data/secret"),
        ),
        ("/data/secret/", ("/data/secret/", "/data/secret"), ("/data/secret/",)),
        (
            "/public/..;/admin",
            ("/public/..;/admin", "/admin"),
            ("/public/..;/admin", "/admin"),
        ),
        (
            "/a//b%2F..%2Fc",
            ("/a//b%2F..%2Fc", "/a//c", "/a/c"),
            ("/a//b%2F..%2Fc", "/a//c"),
        ),
    ],
)
def test_views(raw: str, every: tuple[str, ...], allow: tuple[str, ...]) -> None:
    found = views(raw)

    assert (found.all, found.allow) == (every, allow)
