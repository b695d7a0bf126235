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
