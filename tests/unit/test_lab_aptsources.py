"""Reading the machine's apt sources: one-line `.list` files and deb822 `.sources` stanzas."""

from __future__ import annotations

import pytest

from patchbrain.errors import EnvironmentProblem
from patchbrain.lab import aptsources

DEB822 = """\
# the default Debian sources
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.debian.org/debian-security
Suites: bookworm-security
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

Types: deb-src
URIs: http://src-only.example/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# comment
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian/ bookworm main non-free
deb-src http://mirror.example/debian bookworm main
deb [ trusted=yes ] file:/srv/repo ./
deb http://other.example/debian bookworm-backports main  # trailing comment
"""


def test_deb822_stanzas_expand_uris_and_suites_and_skip_disabled():
    got = list(aptsources.parse_deb822(DEB822, "debian.sources"))
    assert [(s.uri, s.suite) for s in got] == [
        ("http://deb.debian.org/debian", "bookworm"),
        ("http://deb.debian.org/debian", "bookworm-updates"),
        ("http://security.debian.org/debian-security", "bookworm-security"),
    ]
    assert got[0].components == ("main", "contrib")


def test_deb822_continuation_lines_are_joined():
    text = (
        "Types: deb\nURIs: http://a.example/debian\n"
        " http://b.example/debian\nSuites: bookworm\nComponents: main\n"
    )
    assert [s.uri for s in aptsources.parse_deb822(text, "x")] == [
        "http://a.example/debian",
        "http://b.example/debian",
    ]


def test_one_line_options_comments_and_deb_src():
    got = list(aptsources.parse_one_line(ONE_LINE, "x.list"))
    assert [(s.uri, s.suite, s.components) for s in got] == [
        ("http://mirror.example/debian", "bookworm", ("main", "non-free")),
        ("file:/srv/repo", "./", ()),
        ("http://other.example/debian", "bookworm-backports", ("main",)),
    ]


def test_machine_sources_reads_only_what_apt_reads(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://one.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list.d" / "old.list.disabled").write_text(
        "deb http://no.example/debian bookworm main\n"
    )
    uris = {s.uri for s in aptsources.machine_sources(tmp_path)}
    assert "http://one.example/debian" in uris
    assert "http://deb.debian.org/debian" in uris
    assert "http://no.example/debian" not in uris


def test_pick_mirror_needs_the_suite_with_main():
    sources = list(aptsources.parse_deb822(DEB822, "x"))
    assert aptsources.pick_mirror(sources, "bookworm") == "http://deb.debian.org/debian"
    with pytest.raises(EnvironmentProblem, match="trixie"):
        aptsources.pick_mirror(sources, "trixie")
