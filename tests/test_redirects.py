"""One safe-redirect check for both web apps: only a path on this site."""

from __future__ import annotations

import pytest

from common.redirects import safe_next


@pytest.mark.parametrize("target", ["/", "/tickets/3", "/queue?state=open&grid=330102001001001", "/devices#top"])
def test_paths_on_this_site_pass(target):
    assert safe_next(target) == target


@pytest.mark.parametrize("target", [
    None, "", "//evil.example", "/\t/evil.example", "/\n/evil.example", "/\r//evil.example", "\t//evil.example",
    "/\\evil.example", "\\\\evil.example", "https://evil.example", "http:evil.example", "javascript:alert(1)",
    " /x", "/\x00", "/\x7f", "evil.example", "/x" * 2000, 42,
])
def test_anything_else_goes_to_the_default(target):
    assert safe_next(target, "/home") == "/home"
