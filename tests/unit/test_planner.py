"""Planner properties (hypothesis): every host in exactly one wave, the canary covers every group it can,
no wave over its maximum, no wave starting outside a member's window, canary:false never a canary, at most
one bare-metal canary; and a few worked examples."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patchbrain.errors import BadInput
from patchbrain.models import Host, PendingUpdate
from patchbrain.planner import (
    HostTarget,
    PlanPolicy,
    UpdateScore,
    common_start,
    plan_waves,
)
from patchbrain.windows import MaintenanceWindow

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
WINDOWS = (
    (),
    (MaintenanceWindow("FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0", dt.timedelta(hours=3)),),
    (MaintenanceWindow("FREQ=DAILY;BYHOUR=3;BYMINUTE=0;BYSECOND=0", dt.timedelta(hours=2)),),
    (MaintenanceWindow("FREQ=WEEKLY;BYDAY=SA;BYHOUR=22;BYMINUTE=0;BYSECOND=0", dt.timedelta(hours=4)),),
    (
        MaintenanceWindow("FREQ=WEEKLY;BYDAY=SU;BYHOUR=1;BYMINUTE=0;BYSECOND=0", dt.timedelta(hours=2)),
        MaintenanceWindow("FREQ=DAILY;BYHOUR=12;BYMINUTE=30;BYSECOND=0", dt.timedelta(minutes=45)),
    ),
)
RELEASES = ("debian 12", "debian 11", "rhel 9")
PACKAGES = ("openssl", "bash", "sudo", "curl")


def score(u: PendingUpdate) -> UpdateScore:
    return UpdateScore(min(1.0, 0.1 * len(u.cves) + 0.01 * len(u.package)), f"{len(u.cves)} CVEs")


@st.composite
def fleets(draw: st.DrawFn) -> list[HostTarget]:
    n = draw(st.integers(min_value=1, max_value=25))
    out = []
    for i in range(n):
        mgr = draw(st.sampled_from(("apt", "dnf", "zypper")))
        pkgs = draw(st.sets(st.sampled_from(PACKAGES), min_size=0, max_size=3))
        host = Host(
            f"h{i:03d}",
            f"10.0.0.{i}",
            platform=draw(st.sampled_from(("vm", "vm", "baremetal"))),
            criticality=draw(st.integers(1, 5)),
            exposure=draw(st.integers(1, 5)),
            canary=draw(st.sampled_from((None, None, True, False))),
            pkg_mgr=mgr,
            windows=draw(st.sampled_from(WINDOWS)),
        )
        updates = tuple(
            PendingUpdate(
                host.name,
                p,
                "1.0",
                draw(st.sampled_from(("1.1", "1.2"))),
                mgr,
                tuple(f"CVE-2024-{1000 + k}" for k in range(draw(st.integers(0, 3)))),
            )
            for p in sorted(pkgs)
        )
        out.append(HostTarget(host, draw(st.sampled_from(RELEASES)), mgr, updates))
    return out


policies = st.builds(
    PlanPolicy,
    spec=st.sampled_from(("1,10%,50%,100%", "1,100%", "2,25%,100%", "10%,5,100%", "3,50%,100%")),
    max_per_wave=st.one_of(st.none(), st.integers(1, 12)),
    max_failures_pct=st.integers(0, 50),
    bake=st.sampled_from((dt.timedelta(0), dt.timedelta(minutes=30))),
)


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(fleet=fleets(), policy=policies, exclude=st.sets(st.integers(0, 40), max_size=4))
def test_planner_properties(fleet, policy, exclude):
    import dataclasses

    excluded = frozenset(f"h{i:03d}" for i in exclude)
    policy = dataclasses.replace(policy, excluded=excluded)
    layout = plan_waves(fleet, score, policy, now=NOW)
    by_name = {t.host.name: t for t in fleet}
    planned = [h for w in layout.waves for h in w.hosts]

    # every host with something pending and not excluded is in exactly one wave; the rest are listed
    assert len(planned) == len(set(planned))
    expected = {n for n, t in by_name.items() if t.updates and n not in excluded}
    assert set(planned) | set(layout.excluded) >= expected
    assert set(planned) == expected - set(layout.excluded)
    assert not set(planned) & excluded
    # a host is left out only for a stated reason that holds: the policy, nothing pending, or (never with
    # these windows, which all open within a day or a week) no maintenance window within a year
    for name, why in layout.excluded.items():
        if name in excluded:
            assert why.startswith("excluded by policy"), (name, why)
        else:
            assert why == "nothing pending" and not by_name[name].updates, (name, why)

    # the waves' hosts are the ranked ones, package sets most urgent first
    for name in planned:
        risks = [p.risk for p in layout.hosts[name].packages]
        assert risks == sorted(risks, reverse=True)

    # no wave over its maximum
    if policy.max_per_wave is not None:
        assert all(len(w.hosts) <= policy.max_per_wave for w in layout.waves)

    # canary: never a host marked false, at most one bare-metal host, covers every coverable group
    canary = [h for w in layout.waves if w.kind == "canary" for h in w.hosts]
    kinds = [w.kind for w in layout.waves]
    assert kinds == sorted(kinds, key=lambda k: k != "canary")  # canary waves first
    assert all(by_name[h].host.canary is not False for h in canary)
    assert sum(by_name[h].host.platform == "baremetal" for h in canary) <= 1
    covered = {layout.hosts[h].group for h in canary}
    groups: dict[tuple, list[str]] = {}
    for name in planned:
        groups.setdefault(layout.hosts[name].group, []).append(name)
    bm_in_canary = any(by_name[h].host.platform == "baremetal" for h in canary)
    for key, members in groups.items():
        eligible = [m for m in members if by_name[m].host.canary is not False]
        vm_eligible = [m for m in eligible if by_name[m].host.platform == "vm"]
        if vm_eligible or (eligible and not bm_in_canary):
            assert key in covered, (key, members)
        elif key not in covered:
            assert any("canary does not cover group" in w for w in layout.warnings)
    # the canary is at least the spec's first number when enough hosts may be canaries
    if canary:
        may = [h for h in planned if by_name[h].host.canary is not False]
        assert len(canary) >= min(len(may), 1)

    # no wave starts outside a member's window, and waves start in order
    previous = None
    for w in layout.waves:
        for h in w.hosts:
            windows = by_name[h].host.windows
            assert not windows or any(win.contains(w.earliest_start) for win in windows), (w, windows)
        if previous is not None:
            assert w.earliest_start >= previous + policy.wave_runtime + policy.bake
        previous = w.earliest_start
        # failure threshold: none for the canary, the policy's share for later waves
        assert w.max_failures == (0 if w.kind == "canary" else len(w.hosts) * policy.max_failures_pct // 100)


def _target(name, mgr="apt", release="debian 12", pkgs=("openssl",), **host):
    return HostTarget(
        Host(name, name, pkg_mgr=mgr, **host),
        release,
        mgr,
        tuple(PendingUpdate(name, p, "1.0", "1.1", mgr, ("CVE-2024-0001",)) for p in pkgs),
    )


def test_canary_is_widened_to_one_host_per_group_and_prefers_marked_quiet_hosts():
    fleet = [
        _target("a1", criticality=5),
        _target("a2", criticality=1),
        _target("a3", canary=True, criticality=5),  # marked: first choice for its group
        _target("r1", mgr="dnf", release="rhel 9"),
        _target("r2", mgr="dnf", release="rhel 9", canary=False),
        _target("b1", pkgs=("openssl", "bash")),
        _target("m1", mgr="dnf", release="rhel 8", platform="baremetal"),
        _target("m2", mgr="zypper", release="sles 15", platform="baremetal"),
    ]
    layout = plan_waves(fleet, score, PlanPolicy(spec="1,100%"), now=NOW)
    canary = set(layout.waves[0].hosts)
    assert layout.waves[0].kind == "canary"
    # one per group: debian/openssl (a3), rhel9 (r1), debian/openssl+bash (b1), one of the bare-metal ones
    assert {"a3", "r1", "b1"} <= canary and len(canary) == 4
    assert len(canary & {"m1", "m2"}) == 1
    assert any("bare metal" in w for w in layout.warnings)


def test_spec_first_number_is_a_minimum_and_growing_waves_follow_the_wave_rule():
    fleet = [_target(f"h{i:02d}") for i in range(30)]  # one group
    layout = plan_waves(fleet, score, PlanPolicy(spec="2,10%,50%,100%"), now=NOW)
    assert [len(w.hosts) for w in layout.waves] == [2, 3, 11, 14]  # 28 remain: 10% -> 3, 50% -> 14
    layout = plan_waves(fleet, score, PlanPolicy(spec="2,10%,50%,100%", max_per_wave=5), now=NOW)
    assert [len(w.hosts) for w in layout.waves] == [2, 3, 5, 5, 1, 5, 5, 4]


def test_waves_split_when_members_share_no_window_and_each_starts_inside_all_windows():
    sat = WINDOWS[3]
    daily2 = WINDOWS[1]
    daily3 = WINDOWS[2]
    fleet = [
        _target("c0", canary=True),
        _target("s1", windows=sat),
        _target("d1", windows=daily2),
        _target("d2", windows=daily3),
    ]
    layout = plan_waves(fleet, score, PlanPolicy(spec="1,100%"), now=NOW)
    later = layout.waves[1:]
    # daily 02:00-05:00 and daily 03:00-05:00 overlap; Saturday 22:00-02:00 overlaps neither
    assert sorted(sorted(w.hosts) for w in later) == [["d1", "d2"], ["s1"]]
    for w in later:
        assert w.earliest_start is not None
        for h in w.hosts:
            assert any(
                win.contains(w.earliest_start)
                for win in next(t for t in fleet if t.host.name == h).host.windows
            )
    dd = next(w for w in later if "d1" in w.hosts)
    assert dd.earliest_start == dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.UTC)  # 03:00, inside both


def test_common_start_and_never_opening_windows():
    assert common_start([(), ()], NOW) == NOW
    # Saturday 22:00-02:00 and daily 02:00-05:00 never overlap
    assert common_start([WINDOWS[1], WINDOWS[3]], NOW) is None
    start = common_start([WINDOWS[1]], NOW)
    assert start == dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def test_precomputed_scores_must_cover_every_update_and_stay_in_range():
    fleet = [_target("h1", pkgs=("openssl", "bash"))]
    scores = {("h1", "openssl"): UpdateScore(0.9, "KEV"), ("h1", "bash"): UpdateScore(0.2, "")}
    layout = plan_waves(fleet, scores, PlanPolicy(spec="1"), now=NOW)
    assert [p.name for p in layout.hosts["h1"].packages] == ["openssl", "bash"]
    assert layout.hosts["h1"].risk == pytest.approx(1 - 0.1 * 0.8)
    with pytest.raises(BadInput, match="no risk score"):
        plan_waves(fleet, {("h1", "openssl"): UpdateScore(0.9)}, PlanPolicy(spec="1"), now=NOW)
    with pytest.raises(BadInput, match="outside"):
        plan_waves(fleet, lambda u: UpdateScore(1.5), PlanPolicy(spec="1"), now=NOW)
