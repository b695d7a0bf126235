"""Write Ansible variables files whose strings Ansible never templates (`!unsafe`).

Each top-level list or mapping is tagged `!unsafe` as a whole: ansible-core marks every string inside it
untrusted, and nested scalars keep their quoted types. Tagging each string scalar instead would be wrong:
ansible-core 2.19 re-resolves an `!unsafe` scalar's type as if it were plain, so `!unsafe '1.10'` loads as
the float 1.1 (a different package version). A top-level string is tagged only when it cannot be read as
anything but a string; otherwise dumping refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

_STR = "tag:yaml.org,2002:str"
_UNSAFE = "!unsafe"


class _PlainDumper(yaml.SafeDumper):
    """A SafeDumper that quotes every string, so none is read back as a number, bool or null."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar(_STR, data, style="'")


def _represent_mapping(dumper: yaml.SafeDumper, data: Mapping[Any, Any]) -> yaml.Node:
    pairs = []
    for key, value in data.items():
        if not isinstance(key, str):
            raise TypeError(f"variables keys must be strings, got {type(key).__name__}")
        pairs.append((dumper.represent_scalar(_STR, key, style="'"), dumper.represent_data(value)))
    return yaml.MappingNode("tag:yaml.org,2002:map", pairs)


_PlainDumper.add_representer(str, _represent_str)
_PlainDumper.add_representer(dict, _represent_mapping)


def _reads_as_str(value: str) -> bool:
    resolved = yaml.resolver.Resolver().resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return bool(resolved == _STR)


def dump_unsafe(data: Mapping[str, Any]) -> str:
    """YAML for an Ansible `-e @file` in which no string can be templated."""
    lines = []
    for name in sorted(data):
        if not isinstance(name, str):
            raise TypeError("variable names must be strings")
        value = data[name]
        key = yaml.dump(name, Dumper=_PlainDumper).removesuffix("\n...\n").strip()
        if isinstance(value, dict | list):
            body = yaml.dump(value, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, indent=2)
            indented = "".join(f"  {line}\n" for line in body.splitlines())
            lines.append(f"{key}: {_UNSAFE}\n{indented}")
        elif isinstance(value, str):
            if not _reads_as_str(value):
                raise TypeError(f"top-level string {name!r} would not load as a string; nest it in a mapping")
            scalar = yaml.dump(value, Dumper=_PlainDumper, allow_unicode=True).removesuffix("\n...\n").strip()
            lines.append(f"{key}: {_UNSAFE} {scalar}\n")
        else:
            scalar = yaml.safe_dump(value).removesuffix("\n...\n").strip()
            lines.append(f"{key}: {scalar}\n")
    return "".join(lines) or "{}\n"
