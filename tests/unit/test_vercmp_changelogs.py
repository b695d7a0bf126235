"""dpkg/rpm version ordering and CVE extraction from changelogs between two versions."""

from __future__ import annotations

import pytest

from patchbrain.executor.changelogs import cves_between
from patchbrain.executor.vercmp import deb_compare, rpm_compare


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [
        ("1.0", "1.1", -1),
        ("1.1", "1.1", 0),
        ("1.0~rc1", "1.0", -1),
        ("1:0.9", "2.0", 1),
        ("2.36-9+deb12u4", "2.36-9+deb12u10", -1),
        ("1.0-1", "1.0-1~bpo1", 1),
        ("1.0a", "1.0", 1),
        ("1.0", "1.0+b1", -1),
        ("10", "9", 1),
        ("1.01", "1.1", 0),
    ],
)
def test_deb(a, b, sign):
    c = deb_compare(a, b)
    assert (c > 0) - (c < 0) == sign
    c2 = deb_compare(b, a)
    assert (c2 > 0) - (c2 < 0) == -sign


@pytest.mark.parametrize(
    ("a", "b", "sign"),
    [
        ("1.0-1", "1.1-1", -1),
        ("1.1-1", "1.1-1", 0),
        ("1.0~rc1-1", "1.0-1", -1),
        ("1:1.0-1", "2.0-1", 1),
        ("1.0^git1-1", "1.0-1", 1),
        ("1.0^git1-1", "1.0.1-1", -1),
        ("5.14.0-362.el9", "5.14.0-70.el9", 1),
        ("1.0a-1", "1.0.1-1", -1),
        ("1.1", "1.1-5", 0),
        ("2.0.1", "2.0", 1),
    ],
)
def test_rpm(a, b, sign):
    c = rpm_compare(a, b)
    assert (c > 0) - (c < 0) == sign
    c2 = rpm_compare(b, a)
    assert (c2 > 0) - (c2 < 0) == -sign


DEB = """\
labdemo (1.2) bookworm; urgency=medium

  * Not yet installable: CVE-2026-9999.

 -- Lab <lab@example.org>  Thu, 26 Nov 2026 10:00:00 +0000

labdemo (1.1) bookworm; urgency=high

  * Fix buffer overflow (CVE-2026-10001, CVE-2026-10002).
  * Hardening; see also CVE-2026-10001.

 -- Lab <lab@example.org>  Wed, 25 Nov 2026 10:00:00 +0000

labdemo (1.0) bookworm; urgency=low

  * Initial release, fixing CVE-2025-0001 upstream.

 -- Lab <lab@example.org>  Tue, 24 Nov 2026 10:00:00 +0000
"""

RPM = """\
* Wed Nov 25 2026 Lab <lab@example.org> - 1.1-1
- Fix buffer overflow (CVE-2026-10001)
- Also CVE-2026-10002

* Tue Nov 24 2026 Lab <lab@example.org> - 1.0-1
- Initial package, CVE-2025-0001
"""


def test_debian_changelog_between_versions():
    assert cves_between(DEB, "deb", "1.0", "1.1") == ("CVE-2026-10001", "CVE-2026-10002")
    assert cves_between(DEB, "deb", "1.1", "1.1") == ()
    assert cves_between(DEB, "deb", None, "1.1") == ("CVE-2025-0001", "CVE-2026-10001", "CVE-2026-10002")
    assert cves_between(DEB, "deb", "1.0", "1.2")[-1] == "CVE-2026-9999"


def test_rpm_changelog_between_versions():
    assert cves_between(RPM, "rpm", "0:1.0-1", "0:1.1-1") == ("CVE-2026-10001", "CVE-2026-10002")
    assert cves_between(RPM, "rpm", "1.1-1", "1.1-1") == ()


def test_hostile_changelog_text_yields_only_cve_ids():
    text = "labdemo (1.1) x; urgency=low\n  * {{ lookup('pipe','id') }} CVE-2026-1234; touch /tmp/pwned\n"
    assert cves_between(text, "deb", "1.0", "1.1") == ("CVE-2026-1234",)
