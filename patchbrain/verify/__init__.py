"""The independent verifier: a second, read-only SSH channel (paramiko) that does not go through Ansible.

`read_hosts` opens patchbrain's own SSH sessions (strict host-key checking, unknown keys rejected) and runs
fixed read-only commands: installed versions of validated package names, `nft -j list ruleset`, SELinux
mode and the rest of the posture probes. `check_wave` compares what it read with what the plan expected and
what Ansible reported; a host whose self-report disagrees counts as failed.
"""

from patchbrain.verify.check import Difference, HostVerdict, VerifyReport, check_wave
from patchbrain.verify.read import HostReading, SshAccess, access_from_inventory, read_hosts

__all__ = [
    "Difference",
    "HostReading",
    "HostVerdict",
    "SshAccess",
    "VerifyReport",
    "access_from_inventory",
    "check_wave",
    "read_hosts",
]
