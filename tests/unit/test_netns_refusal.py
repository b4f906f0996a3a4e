"""When the local sandbox cannot get its own way to the internet, it refuses and says why."""

from __future__ import annotations

import os

import pytest

from claude_e2b.sandbox.localbox.netns import (
    TUN_DEVICE,
    NetworkPolicy,
    NetworkRefusedError,
    parse_destination,
    plan_network,
    tun_usable,
)


def test_internet_without_a_usable_tun_device_is_refused_with_the_ways_out() -> None:
    with pytest.raises(NetworkRefusedError) as refused:
        plan_network(NetworkPolicy(), namespaces=True, has_slirp=True, host_nets=[], tun_ok=False)
    message = str(refused.value)
    assert f"chmod 0666 {TUN_DEVICE}" in message
    assert "`network:` list" in message
    assert "--shared-network" in message


def test_an_allow_list_needs_no_tun_device() -> None:
    plan = plan_network(
        NetworkPolicy(parse_destination("127.0.0.1:8080"), internet=False),
        namespaces=True,
        has_slirp=True,
        host_nets=[],
        tun_ok=False,
    )
    assert plan.isolated
    assert not plan.internet


def test_root_needs_no_permission_on_the_device() -> None:
    assert tun_usable(userns=False)
    assert tun_usable(userns=True) == os.access(TUN_DEVICE, os.R_OK | os.W_OK)
