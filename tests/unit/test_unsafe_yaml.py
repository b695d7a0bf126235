"""Variables files written for Ansible mark every string `!unsafe`, so nothing in them is templated."""

from __future__ import annotations

import yaml

from patchbrain.executor.unsafe_yaml import dump_unsafe


def test_every_string_value_is_unsafe_and_round_trips():
    data = {
        "patch_packages": [{"name": "{{ lookup('pipe','id') }}", "version": "; touch /tmp/pwned"}],
        "n": 3,
        "flag": None,
        "hosts": {"h1": ["a"]},
    }
    text = dump_unsafe(data)
    assert text.count("!unsafe") == 3
    assert "!unsafe '{{ lookup(''pipe'',''id'') }}'" in text

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    assert yaml.load(text, Loader=Loader) == data  # noqa: S506 - SafeLoader subclass
