"""Write Ansible variables files in which every string value is tagged `!unsafe`.

Ansible never templates an `!unsafe` value, so a package name such as `{{ lookup('pipe','id') }}` stays
the literal text it is. Keys stay plain (callers only use validated host and package names as keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


class _UnsafeDumper(yaml.SafeDumper):
    """A SafeDumper that tags every string scalar value `!unsafe`."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", data, style="'")


def _represent_mapping(dumper: yaml.SafeDumper, data: Mapping[Any, Any]) -> yaml.Node:
    pairs = []
    for key, value in data.items():
        if not isinstance(key, str):
            raise TypeError(f"variables keys must be strings, got {type(key).__name__}")
        pairs.append((yaml.ScalarNode("tag:yaml.org,2002:str", key, style="'"), dumper.represent_data(value)))
    return yaml.MappingNode("tag:yaml.org,2002:map", pairs)


_UnsafeDumper.add_representer(str, _represent_str)
_UnsafeDumper.add_representer(dict, _represent_mapping)


def dump_unsafe(data: Mapping[str, Any]) -> str:
    """YAML for an Ansible `-e @file` with every string value marked `!unsafe`."""
    return yaml.dump(dict(data), Dumper=_UnsafeDumper, sort_keys=True, allow_unicode=True)
