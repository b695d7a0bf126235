"""Every role stands alone: meta, argument specs, a README naming each variable, and a Molecule scenario."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir())


def test_there_are_roles():
    assert ROLES, "roles/ holds no role"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_has_meta_and_argument_specs(role):
    meta = yaml.safe_load((role / "meta/main.yml").read_text())
    assert meta["galaxy_info"]["role_name"] == role.name
    assert meta.get("dependencies", []) == []
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())
    assert "main" in specs["argument_specs"]


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_variable_is_specified_prefixed_and_documented(role):
    defaults_file = role / "defaults/main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
    options: dict[str, object] = {}
    for entry in specs.values():
        options |= entry.get("options") or {}
    readme = (role / "README.md").read_text()
    for name in set(defaults) | set(options):
        assert name.startswith(f"{role.name}_"), f"{name} is not prefixed with the role name"
        assert name in options, f"{name} has a default but no argument spec"
        assert name in readme or _documented_as_group(name, readme), f"{name} is not in {role.name}/README.md"


def _documented_as_group(name: str, readme: str) -> bool:
    """READMEs may document `posture_collect_firewall` / `_selinux` as one row: accept the suffix form."""
    head, _, tail = name.rpartition("_")
    return f"`{head}_" in readme and f"`_{tail}`" in readme


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_role_has_a_molecule_scenario(role):
    scenario = ROOT / "molecule" / role.name
    assert (scenario / "molecule.yml").is_file(), f"add molecule/{role.name} (copy molecule/_template)"
    assert (scenario / "converge.yml").is_file()
    assert (scenario / "verify.yml").is_file()
    assert f"name: {role.name}" in (scenario / "converge.yml").read_text()
