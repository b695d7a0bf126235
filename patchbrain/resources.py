"""Find the Ansible content (playbooks/, roles/) shipped with patchbrain, installed or in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def ansible_dir() -> Path:
    """The folder that holds `playbooks/` and `roles/`.

    An installed wheel carries them as `patchbrain/ansible/`; a source checkout has them at the top level.
    """
    packaged = Path(str(resources.files("patchbrain"))) / "ansible"
    if (packaged / "playbooks").is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "playbooks").is_dir():
        return checkout
    raise FileNotFoundError("patchbrain's playbooks/ and roles/ are missing from this installation")


def playbook(name: str) -> Path:
    """The path of a shipped playbook, e.g. `playbook("rollout.yml")`."""
    path = ansible_dir() / "playbooks" / name
    if not path.is_file():
        raise FileNotFoundError(f"no shipped playbook named {name!r}")
    return path


def roles_dir() -> Path:
    """The folder of shipped roles, for ANSIBLE_ROLES_PATH."""
    return ansible_dir() / "roles"
