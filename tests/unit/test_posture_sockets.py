"""`ss -H -tulpn` output recorded in a scratch namespace with real listeners."""

from __future__ import annotations

import pytest
from posture_helpers import document, fixture

from patchbrain.errors import BadInput
from patchbrain.posture import diff, snapshot, sockets


def snap(name: str):
    return snapshot.parse_document(document("web1", ss=fixture(f"ss/{name}.txt")))


def test_listeners_parse():
    socks = sockets.parse_ss(fixture("ss/base.txt"), host="web1")
    keys = {s.key for s in socks}
    assert {
        ("tcp", "0.0.0.0", 22),  # noqa: S104 - parsed text, nothing binds
        ("tcp", "::", 22),
        ("tcp", "127.0.0.1", 5432),
        ("udp", "0.0.0.0", 68),  # noqa: S104
    } == keys
    assert all(s.process for s in socks)
    assert [s.loopback for s in socks if s.port == 5432] == [True]


def test_new_public_listener_weakens_loopback_one_does_not():
    changes = diff.diff(snap("base"), snap("new_listener"))
    assert [(c.effect, c.subject) for c in changes] == [("weakens", "tcp 0.0.0.0:8080")]
    assert changes[0].admitted == (("tcp", 8080, 8080),)


def test_loopback_service_rebound_to_all_addresses_weakens():
    changes = diff.diff(snap("base"), snap("rebound"))
    assert [(c.effect, c.subject) for c in changes] == [("weakens", "tcp 0.0.0.0:5432")]


def test_ss_garbage_is_bad_input():
    with pytest.raises(BadInput, match="web1: ss -H -tulpn"):
        sockets.parse_ss("State Recv-Q\nLISTEN 0\n", host="web1")
