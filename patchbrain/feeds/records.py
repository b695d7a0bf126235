"""The normalized CVE record every feed parser produces and every consumer (store, model) reads."""

from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass(frozen=True, slots=True)
class Provenance:
    """Where a field's value came from: the feed, its format version, and when the feed said it."""

    feed: str
    version: str
    time: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Reference:
    """A reference URL with the tags the feed gave it (e.g. "Patch", "Vendor Advisory")."""

    url: str
    tags: tuple[str, ...] = ()
    source: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CveRecord:
    """One CVE as one feed describes it.

    `provenance` maps a field name (e.g. "cvss3_score") to where its value came from; fields absent from
    the feed are None or empty and have no provenance entry. CVSS scores are computed from the vectors by
    the `cvss` library, never copied from the feed (`stated_scores` keeps what the feed claimed).
    `rejected` marks CVEs their CNA withdrew.
    """

    cve_id: str
    published: dt.datetime | None = None
    last_modified: dt.datetime | None = None
    description: str = ""
    assigner: str | None = None
    cvss3_vector: str | None = None
    cvss3_score: float | None = None
    cvss2_vector: str | None = None
    cvss2_score: float | None = None
    cwes: tuple[str, ...] = ()
    cpes: tuple[str, ...] = ()
    references: tuple[Reference, ...] = ()
    rejected: bool = False
    provenance: dict[str, Provenance] = dataclasses.field(default_factory=dict, compare=False)
    cvss4_vector: str | None = None
    cvss4_score: float | None = None
    # The base scores the feed itself stated ("cvss3" -> 9.8), kept apart from the computed ones so the
    # poisoning screens can see a feed that claims more than its vector supports. Never stored.
    stated_scores: tuple[tuple[str, float], ...] = dataclasses.field(default=(), compare=False)
