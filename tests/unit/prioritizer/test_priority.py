"""Patch priority: behavioural properties of the (host, update) risk score and its vectorised form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from patchbrain.errors import BadInput
from patchbrain.models import PendingUpdate
from patchbrain.prioritizer import priority as P

probs = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
levels = st.integers(min_value=1, max_value=5)


def _update(host: str, cves: tuple[str, ...], pkg: str = "openssl") -> PendingUpdate:
    return PendingUpdate(host=host, package=pkg, installed="1.0", candidate="1.1", pkg_mgr="apt", cves=cves)


def _risk_of(host: P.HostContext, cves: tuple[str, ...], scores: dict[str, float], kev: set[str]) -> float:
    out = P.score_updates({host.name: host}, [_update(host.name, cves)], scores, kev, unknown_p=0.01)
    return out[0].risk


@given(st.lists(probs, min_size=1, max_size=6), st.integers(min_value=0, max_value=5), levels, levels)
def test_kev_listed_cve_outranks_the_same_cve_without_kev_on_the_same_host(ps, which, c, e):
    cves = tuple(f"CVE-2019-{1000 + i}" for i in range(len(ps)))
    scores = dict(zip(cves, ps, strict=True))
    host = P.HostContext("web1", c, e)
    listed = _risk_of(host, cves, scores, {cves[which % len(cves)]})
    unlisted = _risk_of(host, cves, scores, set())
    assert listed >= unlisted
    if max(ps) < 0.999:
        assert listed > unlisted


@given(st.lists(probs, min_size=0, max_size=6), levels, levels, levels, st.booleans())
def test_higher_criticality_or_exposure_never_lowers_risk(ps, c, e, bump, kev):
    cves = tuple(f"CVE-2018-{2000 + i}" for i in range(len(ps)))
    scores = dict(zip(cves, ps, strict=True))
    kev_ids = set(cves[:1]) if kev else set()
    low = _risk_of(P.HostContext("db1", c, e), cves, scores, kev_ids)
    assert _risk_of(P.HostContext("db1", max(c, bump), e), cves, scores, kev_ids) >= low
    assert _risk_of(P.HostContext("db1", c, max(e, bump)), cves, scores, kev_ids) >= low


@given(st.lists(probs, min_size=1, max_size=5), probs, st.integers(min_value=0, max_value=4))
def test_a_higher_cve_score_never_lowers_risk(ps, extra, which):
    cves = tuple(f"CVE-2017-{3000 + i}" for i in range(len(ps)))
    host = P.HostContext("h", 3, 3)
    before = _risk_of(host, cves, dict(zip(cves, ps, strict=True)), set())
    i = which % len(ps)
    raised = list(ps)
    raised[i] = max(ps[i], extra)
    assert _risk_of(host, cves, dict(zip(cves, raised, strict=True)), set()) >= before - 1e-15


def test_renaming_a_host_changes_nothing():
    scores = {"CVE-2019-0001": 0.3, "CVE-2019-0002": 0.02, "CVE-2019-0003": 0.6}
    kev = {"CVE-2019-0003"}
    hosts = {"alpha": P.HostContext("alpha", 4, 2), "beta": P.HostContext("beta", 2, 5)}
    updates = [
        _update("alpha", ("CVE-2019-0001", "CVE-2019-0002"), "curl"),
        _update("beta", ("CVE-2019-0003",), "openssl"),
        _update("alpha", ("CVE-2019-0002",), "bash"),
        _update("beta", (), "tzdata"),
    ]
    before = P.score_updates(hosts, updates, scores, kev, unknown_p=0.01)
    renamed_hosts = {"zeta": P.HostContext("zeta", 4, 2), "beta": hosts["beta"]}
    renamed = [
        PendingUpdate("zeta", u.package, u.installed, u.candidate, u.pkg_mgr, u.cves)
        if u.host == "alpha"
        else u
        for u in updates
    ]
    after = P.score_updates(renamed_hosts, renamed, scores, kev, unknown_p=0.01)
    assert [(r.package, r.risk) for r in before] == [(r.package, r.risk) for r in after]


def test_formula_on_a_worked_example():
    # p_any = 1 - (1-0.2)(1-0.5) = 0.6; KEV: p_eff = 1 - 0.4 * 0.1 = 0.96; weight (5+1)/6 * (2+1)/6 = 0.5
    host = P.HostContext("h", 5, 2)
    r = P.score_updates(
        {"h": host}, [_update("h", ("CVE-1", "CVE-2"))], {"CVE-1": 0.2, "CVE-2": 0.5}, {"CVE-2"}, unknown_p=0
    )[0]
    assert r.p_any == pytest.approx(0.6)
    assert r.risk == pytest.approx(0.96 * 0.5)
    assert r.kev_cves == ("CVE-2",)


def test_unknown_cves_use_the_prior_and_an_update_without_cves_has_no_risk():
    host = P.HostContext("h", 3, 3)
    r = P.score_updates(
        {"h": host}, [_update("h", ("CVE-2099-1",)), _update("h", ())], {}, set(), unknown_p=0.1
    )
    assert [x.cves for x in r] == [("CVE-2099-1",), ()]
    assert r[0].p_any == pytest.approx(0.1) and r[1].risk == 0.0


@given(st.lists(st.lists(st.tuples(probs, st.booleans()), max_size=4), max_size=30), st.data())
def test_vectorised_pair_risk_equals_the_per_pair_formula(pairs, data):
    crit = np.array([data.draw(levels) for _ in pairs], dtype=np.int64)
    expo = np.array([data.draw(levels) for _ in pairs], dtype=np.int64)
    flat = [c for pair in pairs for c in pair]
    offsets = np.cumsum([0] + [len(p) for p in pairs])
    got = P.pair_risk(
        np.array([p for p, _ in flat], dtype=float),
        np.array([k for _, k in flat], dtype=bool),
        offsets,
        crit,
        expo,
    )
    for i, pair in enumerate(pairs):
        p_any = 1.0 - math.prod(1.0 - min(p, 1 - 1e-12) for p, _ in pair)
        kev = any(k for _, k in pair)
        p_eff = 1.0 - (1.0 - p_any) * (1.0 - 0.9 * kev)
        expected = p_eff * ((crit[i] + 1) / 6) * ((expo[i] + 1) / 6)
        assert got.risk[i] == pytest.approx(expected, abs=1e-12)
        assert bool(got.kev[i]) == kev


def test_pair_risk_refuses_inconsistent_offsets():
    with pytest.raises(ValueError):
        P.pair_risk([0.1, 0.2], [False, False], [0, 1], [3], [3])
    with pytest.raises(ValueError):
        P.pair_risk([0.1, 0.2], [False, False], [0, 2, 1, 2], [3, 3, 3], [3, 3, 3])


def test_rank_is_stable_on_ties():
    assert list(P.rank(np.array([0.5, 0.7, 0.5, 0.7]))) == [1, 3, 0, 2]


@pytest.mark.parametrize(
    ("hostvars", "field"),
    [
        ({"patchbrain_criticality": 0}, "patchbrain_criticality"),
        ({"patchbrain_criticality": 6}, "patchbrain_criticality"),
        ({"patchbrain_criticality": "5"}, "patchbrain_criticality"),
        ({"patchbrain_exposure": True}, "patchbrain_exposure"),
        ({"patchbrain_exposure": 2.5}, "patchbrain_exposure"),
    ],
)
def test_host_context_validates_inventory_values(hostvars, field):
    with pytest.raises(BadInput) as exc:
        P.HostContext.from_vars("web1", hostvars)
    assert exc.value.field == field and exc.value.source == "web1"


def test_host_context_defaults_and_explanation():
    ctx = P.HostContext.from_vars("web1", {"patchbrain_criticality": 5})
    assert (ctx.criticality, ctx.exposure) == (5, 3)
    exp = P.explain_host(
        ctx,
        [_update("web1", ("CVE-2019-1", "CVE-2019-2"), "openssl"), _update("other", ("CVE-2019-3",))],
        cve_scores={"CVE-2019-1": 0.4, "CVE-2019-2": 0.01},
        kev_ids={"CVE-2019-1"},
        unknown_p=0.01,
    )
    assert len(exp.updates) == 1 and exp.updates[0].package == "openssl"
    assert "KEV" in exp.lines[1] and "CVE-2019-1" in exp.lines[1]
    assert exp.lines[0].startswith("web1: criticality 5/5")
