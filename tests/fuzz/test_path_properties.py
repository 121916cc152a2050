"""Path views: the fast path for plain paths agrees with full normalisation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from authz_server.authz import paths
from authz_server.errors import PathRejected

segment = st.text(alphabet=st.sampled_from(list("abz09.-_~%2fF5C;=*")), max_size=6)


@given(st.lists(segment, min_size=1, max_size=5), st.booleans())
def test_views_never_raise_other_than_rejecting(
    parts: list[str], trailing: bool
) -> None:
    path = "/" + "/".join(parts) + ("/" if trailing else "")
    try:
        found = paths.views(path)
    except PathRejected:
        return
    assert found.all[0] == found.allow[0]
    assert set(found.allow) <= set(found.all)
    for view in found.all:
        assert view.startswith("/")


@given(st.lists(segment, min_size=1, max_size=5))
def test_plain_paths_are_already_normal(parts: list[str]) -> None:
    path = "/" + "/".join(parts)
    if paths.PLAIN.fullmatch(path):
        assert paths.normalise(path) == path
        assert paths.views(path).all == (path,)
