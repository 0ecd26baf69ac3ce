"""Behind a load balancer the handshake limiter keys on the client X-Forwarded-For names,
trusted only from the configured proxies."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from bridge.config import BridgeConfig
from bridge.server.limits import client_address, parse_networks

PROXIES = parse_networks("10.0.0.5, 192.168.0.0/16, ::1")


def test_the_client_is_the_last_untrusted_hop():
    assert client_address("10.0.0.5", "203.0.113.7", PROXIES) == "203.0.113.7"
    # a client's own header is hearsay: what the trusted proxies appended wins
    assert client_address("10.0.0.5", "1.1.1.1, 203.0.113.7, 192.168.4.4", PROXIES) == (
        "203.0.113.7"
    )
    assert client_address("198.51.100.1", "203.0.113.7", PROXIES) == "198.51.100.1"
    assert client_address("10.0.0.5", None, PROXIES) == "10.0.0.5"
    assert client_address("::1", "garbage, 203.0.113.9", PROXIES) == "203.0.113.9"
    assert client_address("10.0.0.5", "203.0.113.7", ()) == "10.0.0.5"


def test_bad_trusted_proxies_are_refused_at_start():
    with pytest.raises(ValidationError, match="does not appear to be an IPv4 or IPv6"):
        BridgeConfig(trusted_proxies="10.0.0.5, lb.example.com")


async def test_one_clients_failures_behind_a_trusted_proxy_block_only_that_client(start_bridge):
    server = await start_bridge(trusted_proxies="127.0.0.1", handshake_failures=3, secret="k")
    url = f"http://127.0.0.1:{server.port}/bots/x?token=forged"  # an authentication failure
    async with httpx.AsyncClient() as http:
        for _ in range(3):
            bad = await http.get(url, headers={"X-Forwarded-For": "203.0.113.7"})
            assert bad.status_code in (401, 403)
        blocked = await http.get(url, headers={"X-Forwarded-For": "203.0.113.7"})
        other = await http.get(url, headers={"X-Forwarded-For": "203.0.113.8"})
    assert blocked.status_code == 429 and other.status_code in (401, 403)
