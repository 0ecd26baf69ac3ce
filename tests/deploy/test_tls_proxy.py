"""One bridge behind nginx with TLS, on the configuration docs/deployment.md shows: the block
there is what its `lb-config` command writes, and a bot's WebSocket through it works, with a
certificate the test makes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from bridge import cli
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.deploy.balancers import Bridge, LoadBalancer, self_signed
from tests.sounds import ALSA

DOC = Path(__file__).parents[2] / "docs" / "deployment.md"


def documented() -> tuple[list[str], str]:
    """The doc's `speakbridge lb-config --lb nginx` command (its arguments) and the nginx block."""
    text = DOC.read_text()
    command = re.search(r"^speakbridge (lb-config --lb nginx (?:.*\\\n)*.*)$", text, re.M)
    block = re.search(r"^```nginx\n(.*?)^```$", text, re.M | re.S)
    assert command and block, "docs/deployment.md lost its nginx example"
    return shlex.split(command[1].replace("\\\n", " ")), block[1]


def test_the_documented_nginx_file_is_what_lb_config_writes(tmp_path):
    args, block = documented()
    out = args.index("--out")
    assert cli.main([*args[:out], *args[out + 2 :], "--out", str(tmp_path / "s.conf")]) == 0
    assert (tmp_path / "s.conf").read_text() == block


async def test_a_bot_streams_through_nginx_over_tls(tmp_path, monkeypatch):
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the bot trusts the test's certificate
    bridge = Bridge(tmp_path, "bridge", "--port", "0", "--trusted-proxies", "127.0.0.1")
    nginx = None
    try:
        nginx = LoadBalancer(
            "nginx", [bridge.address], tmp_path / "nginx", cert, ("--key", str(key))
        )
        assert "listen 127.0.0.1:" in nginx.config.read_text()
        opts = SimulatorOptions(sample_rate=16000, lead_in_s=0.3, gap_s=2.5, listen_s=0.3)
        base = f"{nginx.ws}/bots/tls-session"
        report = await simulate([base], [str(ALSA / "Front_Left.wav")], opts)
        (utterance,) = report.utterances
        assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.99
        assert nginx.ws.startswith("wss://")
    finally:
        if nginx is not None:
            nginx.stop()
        bridge.stop()
