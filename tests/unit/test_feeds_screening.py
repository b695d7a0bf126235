"""Poisoning screens on real NVD/KEV fixture records, changed the way an attacker would change them; and the
quarantine a sync fills (listing, operator release with a signed statement, audit)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from patchbrain.feeds.kev import load_kev
from patchbrain.feeds.nvd import iter_nvd11
from patchbrain.feeds.records import Reference
from patchbrain.feeds.screening import (
    History,
    Item,
    ScreenConfig,
    default_allow_domains,
    minhash,
    minhash_many,
    registrable_domain,
    screen,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
NVD = FIXTURES / "nvd" / "nvdcve-1.1-sample.json.gz"
KEV = FIXTURES / "kev" / "known_exploited_vulnerabilities-sample.csv"


@pytest.fixture(scope="module")
def real():
    return {r.cve_id: r for r in iter_nvd11(NVD)}


@pytest.fixture(scope="module")
def cfg():
    return ScreenConfig(allow_domains=default_allow_domains())


def _history(records, *, epss=()):
    h = History()
    for r in records:
        h.add_record(r, "nvd")
    h.add_ids("epss", epss)
    return h


def _screens(flags, key):
    return {f.screen for f in flags.get(key, [])}


def test_real_records_pass_when_corroborated(real, cfg):
    """Every real, non-rejected fixture record, new to the store and known to EPSS, passes every screen."""
    live = [r for r in real.values() if not r.rejected]
    h = _history([], epss=[r.cve_id for r in live])
    items = [Item(r.cve_id, "nvd", "nvd", record=r) for r in live]
    assert screen(items, h, cfg) == {}


def test_inflated_stated_score_contradicting_the_vector(real, cfg):
    r = real["CVE-2019-0001"]  # vector scores 7.5
    fake = dataclasses.replace(r, stated_scores=(("cvss3", 9.8), ("cvss2", 7.1)))
    flags = screen([Item(r.cve_id, "nvd", "f", record=fake)], _history([], epss=[r.cve_id]), cfg)
    (flag,) = flags[(r.cve_id, "nvd")]
    assert flag.screen == "score_mismatch" and "stated 9.8" in flag.detail and "scores 7.5" in flag.detail


def test_severity_raised_without_new_reference(real, cfg):
    r = real["CVE-2019-0001"]
    raised = dataclasses.replace(
        r,
        cvss3_vector="CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        cvss3_score=9.8,
        stated_scores=(("cvss3", 9.8),),
    )
    h = _history([r], epss=[r.cve_id])
    assert _screens(screen([Item(r.cve_id, "nvd", "f", record=raised)], h, cfg), (r.cve_id, "nvd")) == {
        "severity_raised"
    }
    # The same raise with a new reference (a real re-analysis cites something) passes.
    cited = dataclasses.replace(
        raised, references=(*r.references, Reference("https://kb.juniper.net/JSA99999"))
    )
    assert screen([Item(r.cve_id, "nvd", "f", record=cited)], h, cfg) == {}


def test_clone_under_a_new_id(real, cfg):
    r = real["CVE-2014-0160"]
    clone = dataclasses.replace(
        r, cve_id="CVE-2019-19999", assigner="cve@mitre.org", published=dt.datetime(2019, 9, 1, tzinfo=dt.UTC)
    )
    flags = screen([Item(clone.cve_id, "nvd", "f", record=clone)], _history(real.values()), cfg)
    got = _screens(flags, (clone.cve_id, "nvd"))
    assert "near_duplicate" in got and "uncorroborated" in got
    assert "copies CVE-2014-0160" in next(
        f.detail for f in flags[(clone.cve_id, "nvd")] if f.screen == "near_duplicate"
    )


def test_siblings_of_one_advisory_are_not_duplicates(real, cfg):
    """Same assigner, published the same week, copied text and references: one advisory's CVEs."""
    r = real["CVE-2019-0001"]
    sib = dataclasses.replace(r, cve_id="CVE-2019-0003", published=r.published + dt.timedelta(days=1))
    flags = screen([Item(sib.cve_id, "nvd", "f", record=sib)], _history([r], epss=[sib.cve_id]), cfg)
    assert flags == {}


def test_patch_source_on_a_foreign_domain(real, cfg):
    r = real["CVE-2019-0001"]
    evil = dataclasses.replace(
        r, references=(*r.references, Reference("https://junos-hotfix.example-cdn.net/fix.tgz", ("Patch",)))
    )
    flags = screen([Item(r.cve_id, "nvd", "f", record=evil)], _history([], epss=[r.cve_id]), cfg)
    (flag,) = flags[(r.cve_id, "nvd")]
    assert flag.screen == "domain_not_allowed" and "example-cdn.net" in flag.detail
    # The vendor's own domain is fine even when not on the list.
    own = dataclasses.replace(r, references=(Reference("https://juniper.net/fix", ("Patch",)),))
    assert screen([Item(r.cve_id, "nvd", "f", record=own)], _history([], epss=[r.cve_id]), cfg) == {}


def test_critical_record_needs_one_known_reference_domain(real, cfg):
    r = real["CVE-2019-0708"]  # 9.8
    only_foreign = dataclasses.replace(r, references=(Reference("https://bluekeep-details.example.org/x"),))
    flags = screen([Item(r.cve_id, "nvd", "f", record=only_foreign)], _history([], epss=[r.cve_id]), cfg)
    assert _screens(flags, (r.cve_id, "nvd")) == {"domain_not_allowed"}


def test_uncorroborated_only_when_it_would_drive_priority(real, cfg):
    high, low = real["CVE-2019-0708"], real["CVE-2017-18538"]  # 9.8 and 4.3
    items = [Item(x.cve_id, "nvd", "f", record=x) for x in (high, low)]
    flags = screen(items, _history([]), cfg)
    assert _screens(flags, (high.cve_id, "nvd")) == {"uncorroborated"}
    assert (low.cve_id, "nvd") not in flags
    # A KEV listing in the same batch is a second source for the CVE (and the CVE one for the KEV entry).
    kev = load_kev(KEV)
    kev_item = Item(
        high.cve_id, "kev", "kev", kev=dataclasses.replace(next(iter(kev.values())), cve_id=high.cve_id)
    )
    assert screen([*items, kev_item], _history([]), cfg).keys() == set()
    relaxed = dataclasses.replace(cfg, require_corroboration=False)
    assert screen(items, _history([]), relaxed) == {}


def test_kev_entry_no_other_feed_knows(cfg):
    kev = load_kev(KEV)
    items = [Item(c, "kev", "kev", kev=e) for c, e in kev.items()]
    known = list(kev)[:5]
    flags = screen(items, _history([], epss=known), cfg)
    assert {k[0] for k in flags} == set(kev) - set(known)
    assert all(_screens(flags, k) == {"kev_unknown"} for k in flags)


def test_burst_from_one_assigner(real, cfg):
    base = real["CVE-2017-18538"]  # low score: only the burst screen can speak
    past = [
        dataclasses.replace(
            base, cve_id=f"CVE-2018-{1000 + i}", published=dt.datetime(2018, 1 + i % 12, 5, tzinfo=dt.UTC)
        )
        for i in range(24)
    ]
    h = _history(past)
    burst = [
        dataclasses.replace(
            base,
            cve_id=f"CVE-2019-{5000 + i}",
            description=f"Issue {i} in product {i}",
            references=(),
            published=dt.datetime(2019, 9, 2, tzinfo=dt.UTC),
        )
        for i in range(150)
    ]
    flags = screen([Item(r.cve_id, "nvd", "f", record=r) for r in burst], h, cfg)
    assert len(flags) == 150 and all(_screens(flags, k) == {"burst"} for k in flags)
    few = screen([Item(r.cve_id, "nvd", "f", record=r) for r in burst[:60]], h, cfg)
    assert few == {}


def test_disabled_screens(real, cfg):
    r = real["CVE-2019-0001"]
    fake = dataclasses.replace(r, stated_scores=(("cvss3", 9.8),))
    off = dataclasses.replace(cfg, disabled=frozenset({"score_mismatch"}))
    assert screen([Item(r.cve_id, "nvd", "f", record=fake)], _history([], epss=[r.cve_id]), off) == {}


def test_minhash_estimates_jaccard():
    a = "remote attackers can execute arbitrary code via a crafted packet to the service"
    b = a.replace("crafted", "malformed")
    same = (minhash(a) == minhash(a)).mean()
    near = (minhash(a) == minhash(b)).mean()
    far = (minhash(a) == minhash("a denial of service in the kernel scheduler")).mean()
    assert same == 1.0 and 0.5 < near < 1.0 and far < 0.2
    assert (minhash_many([a, "", b])[2] == minhash(b)).all()


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://www.securityfocus.com/bid/1", "securityfocus.com"),
        ("http://jvn.jp/en/jp/JVN1/index.html", "jvn.jp"),
        ("https://www.auscert.org.au/bulletins/1", "auscert.org.au"),
        ("https://foo.bar.co.uk/x", "bar.co.uk"),
        ("http://192.168.1.1/x", "192.168.1.1"),
        ("not a url", None),
    ],
)
def test_registrable_domain(url, domain):
    assert registrable_domain(url) == domain


def test_default_allow_list_is_real_nvd_domains():
    allow = default_allow_domains()
    assert {"securityfocus.com", "github.com", "microsoft.com", "debian.org"} <= allow
    assert "example-cdn.net" not in allow and len(allow) > 1000


# --- the quarantine a sync fills ---------------------------------------------------------------------------


def test_sync_quarantines_and_operator_releases(tmp_path, pb_home, capsys):
    from patchbrain.audit import AuditLog
    from patchbrain.cli import main
    from patchbrain.feeds.cvestore import CveStore
    from patchbrain.keys import KeyStore
    from patchbrain.store import Store

    d, k = tmp_path / "repo", tmp_path / "keys"
    assert main(["feeds", "repo", "init", str(d), "--keys", str(k)]) == 0
    assert main(["feeds", "repo", "add", str(d), str(NVD), str(KEV)]) == 0
    assert main(["feeds", "repo", "publish", str(d), "--keys", str(k)]) == 0
    assert main(["feeds", "trust", str(d / "metadata" / "1.root.json")]) == 0
    capsys.readouterr()
    assert main(["feeds", "sync", str(d), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    # Alone, the fixture NVD and KEV samples barely overlap: the uncorroborated high-severity records and
    # the KEV entries no other feed knows are held, never dropped.
    assert res["quarantined"]["kev_unknown"] == 17 and res["quarantined"]["uncorroborated"] >= 1
    assert main(["feeds", "quarantine", "list", "--json"]) == 0
    held = json.loads(capsys.readouterr().out)["quarantine"]
    cve_item = next(e for e in held if e["kind"] == "cve")
    store = Store()
    assert CveStore(store).claims(cve_item["cve_id"]) == []
    # Only an operator with a key releases, and the release is signed and audited.
    assert main(["feeds", "quarantine", "release", str(cve_item["id"]), "--by", "nobody"]) == 2
    KeyStore().new("alice")
    assert (
        main(["feeds", "quarantine", "release", str(cve_item["id"]), "--by", "alice", "--note", "checked"])
        == 0
    )
    claim = CveStore(store).claims(cve_item["cve_id"])
    assert len(claim) == 1 and claim[0].record.cvss3_score == cve_item["item"]["cvss3_score"]
    rec = [r for r in AuditLog(store).records() if r.action == "feeds.quarantine.release"]
    assert (
        len(rec) == 1 and rec[0].actor == "alice" and rec[0].payload["item_sha256"] == cve_item["item_sha256"]
    )
    assert main(["feeds", "quarantine", "release", str(cve_item["id"]), "--by", "alice"]) == 5
    assert main(["feeds", "quarantine", "list", "--all", "--cve", cve_item["cve_id"]]) == 0
    assert "released by alice" in capsys.readouterr().out
    actions = [r.action for r in AuditLog(store).records()]
    assert actions.count("feeds.sync") == 1 and actions[0] == "feeds.trust"
    assert main(["feeds", "status", "--json"]) == 0
    q = json.loads(capsys.readouterr().out)["quarantine"]
    assert q["released"] == 1 and q["held"] == len(held) - 1
