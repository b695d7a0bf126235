"""Prioritizer: LightGBM risk model trained on real NVD features with CISA KEV labels.

Public API (see docs/prioritizer.md):
- `features.extract(record)`, `features.matrix(records, vocab)`: the model inputs of `CveRecord`s;
- `bundle.load_bundle(dir)`, `bundle.load_default()`: verified model bundles; `governance.active_bundle()`;
- `predict.score_records(bundle, records)`, `predict.read_records(nvd, cve5)`, `predict.score_cves(...)`;
- `explain.explain_records(bundle, records)`: per-CVE contributions in words;
- `priority.HostContext.from_vars(name, hostvars)`, `priority.score_updates(hosts, updates, cve_scores,
  kev_ids, unknown_p=bundle.base_rate)`, `priority.pair_risk(...)` (vectorised), `priority.explain_host(...)`;
- `governance.validate_bundle(dir)`, `governance.promote(dir)`, `governance.revert()`.
"""
