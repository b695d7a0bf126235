"""Prioritizer: LightGBM risk model trained on real NVD features with CISA KEV labels."""
