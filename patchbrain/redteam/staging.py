"""A staging inventory as the red team's target: what a lab offers that a staging fleet offers too.

The hosts are reached over patchbrain's own SSH channel (`patchbrain.verify.read.Session`: paramiko, strict
host keys from the inventory's known_hosts), never through a shell on the controller. Only scenarios whose
attacks stay within what any operator can do to a fleet run against it (injection); the others need lab
powers (publishing packages to a repository the hosts trust, resetting, killing or cutting hosts) and report
themselves not available there.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patchbrain.errors import BadInput


@dataclasses.dataclass(frozen=True, slots=True)
class StagingHost:
    """One host of the staging inventory (the lab's HostRecord has the same `name`)."""

    name: str


class StagingHosts:
    """The staging inventory, resolved once with Ansible's loader; `target` is the host the attacks aim at."""

    instance = "staging"

    def __init__(self, inventory: Path, workdir: Path, target: str | None = None) -> None:
        import yaml

        from patchbrain.inventory import read_inventory
        from patchbrain.verify.read import access_from_listing

        listing = read_inventory(inventory)
        hostvars: dict[str, Any] = listing.get("_meta", {}).get("hostvars", {})
        names = sorted(
            set(hostvars)
            | {h for g, doc in listing.items() if g != "_meta" for h in (doc or {}).get("hosts", [])}
        )
        if not names:
            raise BadInput("the staging inventory lists no hosts", source=str(inventory), field="--staging")
        if target is not None and target not in names:
            raise BadInput(
                f"host {target!r} is not in the inventory", source=str(inventory), field="--target"
            )
        self.source = inventory
        self.target = target or names[0]
        self.access = access_from_listing(listing, source=str(inventory))
        self._names = names
        # the scenarios edit and re-read the inventory as YAML: a flat copy of every host's resolved variables
        self._flat = workdir / "staging-inventory.yml"
        self._flat.write_text(
            yaml.safe_dump({"all": {"hosts": {n: dict(hostvars.get(n) or {}) for n in names}}}),
            encoding="utf-8",
        )

    def inventory_path(self) -> Path:
        """The flat YAML copy of the staging inventory (every host with its resolved variables)."""
        return self._flat

    def hosts(self) -> list[StagingHost]:
        return [StagingHost(n) for n in self._names]

    def exec(
        self, name: str, argv: Sequence[str], *, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` on host `name` over patchbrain's own SSH channel (each argument quoted as data)."""
        from patchbrain.verify.read import Session, SshAccess

        if name not in self._names:
            raise BadInput(f"host {name!r} is not in the inventory", source=str(self.source))
        # a host without variables is reached as Ansible would: its name, port 22, root (system known_hosts)
        session = Session(self.access.get(name) or SshAccess(name), timeout)
        try:
            rc, out, err = session.run(shlex.join(argv))
        finally:
            session.close()
        done = subprocess.CompletedProcess(list(argv), rc, out, err)
        if check:
            done.check_returncode()
        return done
