"""Version ordering agrees with the real tools on hundreds of generated pairs.

The real tools run once per test (one shell loop over dpkg, one python3 process with rpm's bindings),
so the subprocess count stays bounded whatever the number of pairs.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchbrain.errors import BadInput
from patchbrain.feeds.versions import compare, dpkg_compare, rpm_compare, rpmvercmp, split_evr

SYSTEM_PYTHON = "/usr/bin/python3"
N_PAIRS = 600


def _segment(rng: random.Random, alphabet: str) -> str:
    kind = rng.random()
    if kind < 0.5:
        return str(rng.choice([0, 1, 2, 9, 10, 11, 99, 100, rng.randrange(0, 10**6)])).zfill(
            rng.choice([1, 1, 2])
        )
    if kind < 0.8:
        return "".join(rng.choice("abcxyzABZ") for _ in range(rng.randint(1, 3)))
    return rng.choice(alphabet)


def _dpkg_version(rng: random.Random) -> str:
    upstream = str(rng.randrange(0, 20)) + "".join(
        _segment(rng, ".+~") if rng.random() < 0.6 else rng.choice(".+~") for _ in range(rng.randint(0, 5))
    )
    v = upstream
    if rng.random() < 0.6:
        v += "-" + "".join(_segment(rng, ".+~") for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.25:
        v = f"{rng.randrange(0, 3)}:{v}"
    return v


def _rpm_version(rng: random.Random) -> str:
    def part() -> str:
        return "".join(_segment(rng, "._+~^") for _ in range(rng.randint(1, 5)))

    v = part()
    if rng.random() < 0.7:
        v += "-" + part()
    if rng.random() < 0.25:
        v = f"{rng.randrange(0, 3)}:{v}"
    return v


def _mutate(rng: random.Random, v: str, gen) -> str:
    """A near neighbour of v, so that comparisons reach deep into the strings."""
    choice = rng.random()
    if choice < 0.15:
        return v
    if choice < 0.3:
        return gen(rng)
    cut = rng.randrange(0, len(v) + 1)
    insert = rng.choice(["~", "^", ".", "0", "1", "a", "~rc1", ".1", "+b1", "00", "-1", "Z"])
    if rng.random() < 0.5:
        return v[:cut] + insert + v[cut:]
    return v[:cut] + insert


def _pairs(gen, valid, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    while len(out) < N_PAIRS:
        a = gen(rng)
        b = _mutate(rng, a, gen)
        if valid(a) and valid(b):
            out.append((a, b))
    return out


def _dpkg_ok(v: str) -> bool:
    from patchbrain.feeds.versions import dpkg_valid

    # dpkg rejects an upstream part containing '-' only when there is no revision; keep to clean inputs.
    return dpkg_valid(v) and " " not in v


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg")
def test_dpkg_ordering_matches_dpkg_compare_versions(tmp_path):
    pairs = _pairs(_dpkg_version, _dpkg_ok, seed=20261126)
    listing = tmp_path / "pairs.txt"
    listing.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    script = (
        'while read -r a b; do if dpkg --compare-versions "$a" lt "$b"; then echo -1; '
        'elif dpkg --compare-versions "$a" eq "$b"; then echo 0; else echo 1; fi; done < "$1"'
    )
    out = subprocess.run(
        ["sh", "-c", script, "sh", str(listing)], capture_output=True, text=True, check=True, timeout=300
    )
    assert "warning" not in out.stderr.lower(), out.stderr[:500]
    truth = [int(x) for x in out.stdout.split()]
    assert len(truth) == len(pairs)
    mismatches = [
        (a, b, t, dpkg_compare(a, b))
        for (a, b), t in zip(pairs, truth, strict=True)
        if dpkg_compare(a, b) != t
    ]
    assert mismatches == []
    assert {-1, 0, 1} <= set(truth)  # the generated pairs exercise every outcome


_RPM_ORACLE = """
import sys, rpm
for line in sys.stdin:
    a, b = line.rstrip("\\n").split("\\t")
    va, vb = rpm.ver(a), rpm.ver(b)
    print(-1 if va < vb else 0 if va == vb else 1)
"""


def _rpm_oracle_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import rpm; rpm.ver"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(
    not _rpm_oracle_available(), reason="needs Debian's python3-rpm (scripts/system-packages.txt)"
)
def test_rpm_ordering_matches_rpms_own_comparison():
    pairs = _pairs(_rpm_version, lambda v: "\t" not in v, seed=4181)
    pairs += [
        ("1.0~rc1-1", "1.0-1"),
        ("1.0^git1-1", "1.0-1"),
        ("1.0^git1", "1.0.1"),
        ("1:1.0-1", "2.0-1"),
        ("1.0-1.el9", "1.0-1.el9_3.2"),
        ("2.0", "2.0-1"),
        ("1.0a", "1.0.a"),
        ("10", "9"),
        ("007", "7"),
        ("1.0-1", "1.0-1"),
        (":1.0", "0:1.0"),
        ("a:b-c-d", "a:b-c-e"),
        ("1.0", "1_0"),
        ("1.0é", "1.0"),
    ]
    stdin = "".join(f"{a}\t{b}\n" for a, b in pairs)
    out = subprocess.run(
        [SYSTEM_PYTHON, "-c", _RPM_ORACLE],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    truth = [int(x) for x in out.stdout.split()]
    assert len(truth) == len(pairs)
    mismatches = [
        (a, b, t, rpm_compare(a, b)) for (a, b), t in zip(pairs, truth, strict=True) if rpm_compare(a, b) != t
    ]
    assert mismatches == []
    assert {-1, 0, 1} <= set(truth)


def test_known_orderings():
    assert dpkg_compare("7.88.1-10+deb12u4", "7.88.1-10+deb12u5") == -1
    assert dpkg_compare("1.0~rc1-1", "1.0-1") == -1
    assert dpkg_compare("1:0.9", "2.0") == 1
    assert rpm_compare("7.76.1-26.el9_3.2", "7.76.1-26.el9") == 1
    assert rpm_compare("1.0~rc1", "1.0") == -1 and rpm_compare("1.0^1", "1.0") == 1
    assert split_evr("1:2.3-4.el9") == ("1", "2.3", "4.el9")
    assert compare("rpm", "2.0", "10.0") == -1


def test_invalid_versions_are_bad_input():
    with pytest.raises(BadInput):
        dpkg_compare("abc", "1.0")
    with pytest.raises(BadInput):
        rpm_compare("1.0\n; rm -rf /", "1.0")
    with pytest.raises(BadInput):
        compare("pacman", "1", "2")


_rpm_text = st.text(alphabet="0123456789abcXYZ.~^_+-:", min_size=1, max_size=16)


@given(a=_rpm_text, b=_rpm_text, c=_rpm_text)
def test_rpmvercmp_is_an_order(a, b, c):
    assert rpmvercmp(a, b) == -rpmvercmp(b, a)
    assert rpmvercmp(a, a) == 0
    if rpmvercmp(a, b) <= 0 and rpmvercmp(b, c) <= 0:
        assert rpmvercmp(a, c) <= 0 or rpmvercmp(a, c) == 0
