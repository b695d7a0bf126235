"""Vulnerability intelligence: parse real feed formats into one normalized CVE record."""
