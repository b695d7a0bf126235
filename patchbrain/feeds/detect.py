"""Tell which feed format a file (or folder) holds from its first bytes, whatever its name says."""

from __future__ import annotations

from pathlib import Path

from patchbrain.feeds.common import FeedError, head_bytes

FORMATS = ("nvd-1.1", "nvd-2.0", "cve5", "kev", "epss", "osv")


def detect_format(path: Path) -> str:
    """One of FORMATS; raises FeedError when the content matches none of them."""
    path = Path(path)
    if not path.exists():
        raise FeedError("no such file or folder", source=str(path))
    if path.is_dir():
        first = next(iter(sorted(path.rglob("*.json"))), None)
        if first is None:
            raise FeedError("folder holds no .json files", source=str(path))
        fmt = detect_format(first)
        if fmt not in ("cve5", "osv"):
            raise FeedError(f"folders of {fmt} files are not supported: name the files", source=str(path))
        return fmt
    head = head_bytes(path, 8192).decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if head.startswith("#model_version") or head.startswith("cve,epss"):
        return "epss"
    if head.startswith("cveID,"):
        return "kev"
    if head.startswith("{"):
        if '"catalogVersion"' in head or "Known Exploited Vulnerabilities" in head:
            return "kev"
        if '"CVE_data_type"' in head or '"CVE_Items"' in head:
            return "nvd-1.1"
        if '"NVD_CVE"' in head or '"resultsPerPage"' in head:
            return "nvd-2.0"
        if '"CVE_RECORD"' in head:
            return "cve5"
        if '"modified"' in head and '"id"' in head:
            return "osv"
    if head.startswith("[") and '"modified"' in head:
        return "osv"
    raise FeedError(
        "unrecognised feed format (expected NVD 1.1/2.0, CVE JSON 5, CISA KEV, FIRST EPSS or OSV)",
        source=str(path),
    )
