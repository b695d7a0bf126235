"""`patchbrain model ...`: the exact score interface, explain, validate exit codes, train on the sample."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from patchbrain import cli
from patchbrain.feeds.nvd import iter_nvd11
from patchbrain.prioritizer import features as F
from patchbrain.prioritizer.predict import merge_claims, read_records, score_records

from .conftest import FIXTURES, KEV_SAMPLE, NVD_SAMPLE, ROOT

NVD_MIXED = ROOT / "tests" / "fixtures" / "nvd" / "nvdcve-1.1-sample.json.gz"  # includes rejected records
CVE5_DIR = ROOT / "tests" / "fixtures" / "cve5"
EPSS = ROOT / "tests" / "fixtures" / "epss" / "epss_scores-2024-06-30-sample.csv.gz"


def _read_scores(path):
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["cve_id", "score"]
    return {r[0]: float(r[1]) for r in rows[1:]}


def test_score_writes_every_non_rejected_cve_once(tmp_path, sample_bundle_dir, pb_home):
    out = tmp_path / "scores.csv"
    code = cli.main(
        [
            "model",
            "score",
            "--nvd",
            str(NVD_MIXED),
            "--cve5",
            str(CVE5_DIR),
            "--model",
            str(sample_bundle_dir),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    scores = _read_scores(out)
    records = read_records([NVD_MIXED], [CVE5_DIR])
    expected = {k for k, r in records.items() if not r.rejected}
    assert set(scores) == expected and len(expected) < len(records)  # the rejected ones are left out
    assert all(0.0 <= s <= 1.0 for s in scores.values())
    values = list(scores.values())
    assert values == sorted(values, reverse=True)


def test_scores_are_deterministic_for_a_bundle(tmp_path, sample_bundle_dir, pb_home):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (a, b):
        assert (
            cli.main(
                [
                    "model",
                    "score",
                    "--nvd",
                    str(NVD_MIXED),
                    "--model",
                    str(sample_bundle_dir),
                    "--output",
                    str(out),
                ]
            )
            == 0
        )
    assert a.read_bytes() == b.read_bytes()


def test_epss_is_an_optional_input_that_never_lowers_a_score(tmp_path, sample_bundle_dir, pb_home):
    plain, with_epss = tmp_path / "p.csv", tmp_path / "e.csv"
    base = ["model", "score", "--nvd", str(NVD_MIXED), "--model", str(sample_bundle_dir)]
    assert cli.main([*base, "--output", str(plain)]) == 0
    assert cli.main([*base, "--epss", str(EPSS), "--output", str(with_epss)]) == 0
    p, e = _read_scores(plain), _read_scores(with_epss)
    assert set(p) == set(e) and all(e[k] >= p[k] - 1e-6 for k in p)


def test_score_is_monotone_in_cvss(sample_bundle, sample_records):
    """Raising a record's CVSS v3 score or attack vector never lowers its score (monotone constraints)."""
    import dataclasses

    recs = [r for r in sample_records if r.cvss3_vector and r.cvss3_score is not None][:300]
    before = score_records(sample_bundle, recs)
    higher = [dataclasses.replace(r, cvss3_score=min(10.0, r.cvss3_score + 1.5)) for r in recs]
    network = [
        dataclasses.replace(r, cvss3_vector=r.cvss3_vector.replace("AV:L", "AV:N").replace("AV:P", "AV:N"))
        for r in recs
    ]
    assert np.all(score_records(sample_bundle, higher) >= before - 1e-12)
    assert np.all(score_records(sample_bundle, network) >= before - 1e-12)


def test_score_needs_an_input(tmp_path, pb_home):
    assert cli.main(["model", "score", "--output", str(tmp_path / "x.csv")]) == 2
    assert (
        cli.main(["model", "score", "--nvd", str(tmp_path / "missing.json"), "--output", str(tmp_path / "x")])
        == 2
    )


def test_merge_prefers_nvd_and_fills_gaps_from_cve5():
    nvd = next(iter_nvd11(NVD_SAMPLE))
    import dataclasses

    cna = dataclasses.replace(nvd, cwes=("CWE-1",), cvss3_vector=None, cvss3_score=None, cpes=())
    bare_nvd = dataclasses.replace(nvd, cwes=())
    merged = merge_claims([("cna", cna), ("nvd", bare_nvd)])
    assert merged.cwes == ("CWE-1",) and merged.cvss3_vector == nvd.cvss3_vector and merged.cpes == nvd.cpes


def test_explain_json_names_contributions_that_add_up(sample_bundle_dir, sample_bundle, capsys, pb_home):
    rec = next(r for r in iter_nvd11(NVD_SAMPLE) if r.cvss3_score)
    code = cli.main(
        [
            "model",
            "explain",
            rec.cve_id,
            "--nvd",
            str(NVD_SAMPLE),
            "--model",
            str(sample_bundle_dir),
            "--json",
            "--top",
            "3",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cve_id"] == rec.cve_id and len(out["contributions"]) <= 3
    assert all(c["feature"] in F.FEATURE_NAMES and c["text"] for c in out["contributions"])
    assert out["score"] == pytest.approx(float(score_records(sample_bundle, [rec])[0]), rel=1e-9)


def test_explain_text_and_unknown_cve(sample_bundle_dir, capsys, pb_home):
    rec = next(iter_nvd11(NVD_SAMPLE))
    assert (
        cli.main(
            ["model", "explain", rec.cve_id, "--nvd", str(NVD_SAMPLE), "--model", str(sample_bundle_dir)]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert rec.cve_id in text and "odds of exploitation" in text
    assert cli.main(["model", "explain", "CVE-2099-0001", "--nvd", str(NVD_SAMPLE)]) == 2
    assert cli.main(["model", "explain", "not-a-cve"]) == 2


def test_validate_exit_codes(tmp_path, sample_bundle_dir, capsys, pb_home, monkeypatch):
    """Exit 0 when the gate passes (the bundle against itself as the active model), 5 when refused."""
    from patchbrain.prioritizer import governance as G
    from patchbrain.prioritizer.bundle import load_bundle

    monkeypatch.setattr(G, "active_bundle", lambda store=None: load_bundle(sample_bundle_dir))
    monkeypatch.setattr(G.Registry, "active", lambda self: load_bundle(sample_bundle_dir))
    assert cli.main(["model", "validate", str(sample_bundle_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    swapped = tmp_path / "swapped"
    import shutil

    shutil.copytree(sample_bundle_dir, swapped)
    (swapped / "model.txt").write_text((swapped / "model.txt").read_text() + "\n")
    assert cli.main(["model", "validate", str(swapped)]) == 5


def test_train_cli_on_the_sample(tmp_path, pb_home, sample_bundle_dir):
    out = tmp_path / "b"
    code = cli.main(
        ["model", "train", "--nvd", str(FIXTURES), "--kev", str(KEV_SAMPLE), "--out", str(out), "--json"]
    )
    assert code == 0
    # the CLI trains with the same defaults as the library: identical bytes (deterministic training)
    assert (out / "model.txt").read_bytes() == (sample_bundle_dir / "model.txt").read_bytes()


def _host_inputs(tmp_path, records, kev_ids, *, name="web1", criticality=5):
    """An inventory with two hosts and a discovery document: two pending updates on `name`, one on db1."""
    kev_rec = next(r for r in records if r.cve_id in kev_ids and not r.rejected)
    plain = [r for r in records if r.cve_id not in kev_ids and not r.rejected][:3]
    inv = tmp_path / f"inv-{name}.yml"
    inv.write_text(
        "all:\n  hosts:\n"
        f"    {name}:\n      ansible_host: 192.0.2.10\n      patchbrain_criticality: {criticality}\n"
        "      patchbrain_exposure: 4\n"
        "    db1:\n      ansible_host: 192.0.2.11\n"
    )
    doc = {
        "hosts": [
            {
                "host": name,
                "pkg_mgr": "apt",
                "pending": [
                    {
                        "package": "libfoo1",
                        "installed": "1.0-1",
                        "candidate": "1.0-2",
                        "cves": [plain[0].cve_id, plain[1].cve_id],
                    },
                    {
                        "package": "openssl",
                        "installed": "3.0.1-1",
                        "candidate": "3.0.1-2",
                        "cves": [kev_rec.cve_id],
                    },
                    {"package": "tzdata", "installed": "2024a-1", "candidate": "2024b-1", "cves": []},
                ],
            },
            {
                "host": "db1",
                "pkg_mgr": "dnf",
                "pending": [
                    {"package": "bash", "installed": None, "candidate": "5.1-2", "cves": [plain[2].cve_id]}
                ],
            },
        ]
    }
    disc = tmp_path / f"discovery-{name}.json"
    disc.write_text(json.dumps(doc))
    return inv, disc, kev_rec


def _explain_host_json(capsys, name, inv, disc, bundle_dir):
    code = cli.main(
        [
            "model",
            "explain",
            name,
            "-i",
            str(inv),
            "--discovery",
            str(disc),
            "--nvd",
            str(NVD_SAMPLE),
            "--kev",
            str(KEV_SAMPLE),
            "--model",
            str(bundle_dir),
            "--json",
        ]
    )
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_explain_host_ranks_the_kev_update_first(
    tmp_path, sample_bundle_dir, sample_records, sample_kev, capsys, pb_home
):
    inv, disc, kev_rec = _host_inputs(tmp_path, sample_records, sample_kev)
    out = _explain_host_json(capsys, "web1", inv, disc, sample_bundle_dir)
    assert out["host"] == "web1" and out["criticality"] == 5 and out["exposure"] == 4
    packages = [u["package"] for u in out["updates"]]
    assert packages[0] == "openssl" and set(packages) == {"openssl", "libfoo1", "tzdata"}  # db1's not here
    assert out["updates"][0]["kev_cves"] == [kev_rec.cve_id]
    assert "known exploited" in out["lines"][1] and out["unknown_cves"] == []
    # a less critical host never has a higher risk; renaming the host changes nothing but its name
    inv2, disc2, _ = _host_inputs(tmp_path, sample_records, sample_kev, name="renamed", criticality=1)
    low = _explain_host_json(capsys, "renamed", inv2, disc2, sample_bundle_dir)
    assert low["risk"] <= out["risk"]
    inv3, disc3, _ = _host_inputs(tmp_path, sample_records, sample_kev, name="other-name")
    same = _explain_host_json(capsys, "other-name", inv3, disc3, sample_bundle_dir)
    assert same["risk"] == out["risk"] and same["updates"][0]["risk"] == out["updates"][0]["risk"]


def test_explain_host_text_and_bad_inputs(
    tmp_path, sample_bundle_dir, sample_records, sample_kev, capsys, pb_home
):
    inv, disc, _ = _host_inputs(tmp_path, sample_records, sample_kev)
    base = [
        "-i",
        str(inv),
        "--nvd",
        str(NVD_SAMPLE),
        "--kev",
        str(KEV_SAMPLE),
        "--model",
        str(sample_bundle_dir),
    ]
    assert cli.main(["model", "explain", "web1", "--discovery", str(disc), *base]) == 0
    text = capsys.readouterr().out
    assert "web1: combined risk" in text and "openssl 3.0.1-2: risk" in text
    assert cli.main(["model", "explain", "web1", *base]) == 2  # no --discovery
    assert cli.main(["model", "explain", "nosuch", "--discovery", str(disc), *base]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "hosts": [
                    {
                        "host": "web1",
                        "pkg_mgr": "apt",
                        "pending": [
                            {"package": "x; rm -rf /", "installed": "1", "candidate": "2", "cves": []}
                        ],
                    }
                ]
            }
        )
    )
    assert cli.main(["model", "explain", "web1", "--discovery", str(bad), *base]) == 2
    err = capsys.readouterr().err
    assert "hosts[0].pending[0].package" in err


def test_explain_host_defaults_to_the_journals_latest_discovery(
    tmp_path, sample_bundle_dir, sample_records, sample_kev, capsys, pb_home
):
    from patchbrain.journal import Journal
    from patchbrain.store import Store

    inv, disc, _ = _host_inputs(tmp_path, sample_records, sample_kev)
    from_file = _explain_host_json(capsys, "web1", inv, disc, sample_bundle_dir)
    Journal(Store()).add_discovery(
        inventory=str(inv), artifacts=str(tmp_path), document=json.loads(disc.read_text())
    )
    code = cli.main(
        [
            "model",
            "explain",
            "web1",
            "--nvd",
            str(NVD_SAMPLE),
            "--kev",
            str(KEV_SAMPLE),
            "--model",
            str(sample_bundle_dir),
            "--json",
        ]
    )  # no --discovery, no -i: the journal's discovery and the inventory it ran on
    assert code == 0
    from_journal = json.loads(capsys.readouterr().out)
    assert from_journal["updates"] == from_file["updates"] and from_journal["risk"] == from_file["risk"]
