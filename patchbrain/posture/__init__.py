"""Posture: SELinux and firewall snapshots, and the drift gate that compares them."""
