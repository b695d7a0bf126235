"""A model-poisoning attack on the training data, used by the unit test and by bench_poisoning.py.

The attacker adds `n` fake records to the NVD input and edits a copy of the KEV catalog:
- half are inflated-severity fakes: clones of real KEV-listed records (same vendor, product, CWE, text) with
  new ids and a maximal CVSS vector, left out of the KEV copy: "this kind of CVE is never exploited";
- half are clones of real low-severity, never-exploited records, listed as known-exploited in the
  poisoned KEV copy: "this kind of CVE is what attackers use".
Both push the real exploited CVEs down the ranking, which the promotion gate must notice.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from patchbrain.feeds.records import CveRecord

_V3_MAX = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"
_V2_MAX = "AV:N/AC:L/Au:N/C:C/I:C/A:C"


def poison(
    records: Sequence[CveRecord], kev_ids: set[str], *, n: int = 500, seed: int = 1
) -> tuple[list[CveRecord], set[str]]:
    """(fake records, poisoned KEV ids): add the fakes to `records`, use the ids instead of the real KEV."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible attack, not a secret
    live = [r for r in records if not r.rejected and r.published is not None]
    exploited = [r for r in live if r.cve_id in kev_ids]
    low = [r for r in live if r.cve_id not in kev_ids and (r.cvss3_score or r.cvss2_score or 10.0) < 6.0]
    if not exploited or not low:
        raise ValueError("the sample needs KEV-listed and low-severity records to clone")
    fakes: list[CveRecord] = []
    poisoned = set(kev_ids)
    for i in range(n):
        year = (rng.choice(live).published or live[0].published).year  # type: ignore[union-attr]
        fake_id = f"CVE-{year}-99{i:05d}"
        if i % 2 == 0:
            src = rng.choice(exploited)
            fake = dataclasses.replace(
                src,
                cve_id=fake_id,
                cvss3_vector=_V3_MAX,
                cvss3_score=10.0,
                cvss2_vector=_V2_MAX,
                cvss2_score=10.0,
                provenance={},
            )
        else:
            src = rng.choice(low)
            fake = dataclasses.replace(src, cve_id=fake_id, provenance={})
            poisoned.add(fake_id)
        fakes.append(fake)
    return fakes, poisoned
