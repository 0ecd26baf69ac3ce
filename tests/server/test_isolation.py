"""A responder that raises or hangs is reported and isolated: its session and others go on."""

import asyncio
import logging

from bridge.sim.simulator import SimulatorOptions, simulate
from tests.sounds import ALSA

WAV = [str(ALSA / "Front_Left.wav")]
OPTS = SimulatorOptions(lead_in_s=0.3, gap_s=2.5, listen_s=0.3)


def assert_echo_intact(report) -> None:
    (utterance,) = report.utterances
    assert utterance.echo_correlation is not None and utterance.echo_correlation > 0.99
    assert report.underruns == 0


async def test_a_responder_raising_in_every_hook_is_logged_and_counted(start_bridge, caplog):
    server = await start_bridge("echo,tests.responders:RaisesEverywhere")
    base = f"ws://127.0.0.1:{server.port}/bots"
    with caplog.at_level(logging.ERROR, logger="bridge"):
        report, other = await asyncio.gather(
            simulate([f"{base}/raises"], WAV, OPTS), simulate([f"{base}/bystander"], WAV, OPTS)
        )
        session = server.sessions.sessions["raises"]
        await session.end("test over")
    assert_echo_intact(report)
    assert_echo_intact(other)
    errors = session.runners[1].errors
    assert errors > 100  # every audio frame, every event, start and stop
    hooks = {
        r.getMessage().split(" in on_")[1].split(";")[0]
        for r in caplog.records
        if "RaisesEverywhere raised" in r.getMessage()
    }
    assert hooks >= {"start", "audio", "speakers", "speech_start", "speech_stop", "event", "stop"}
    assert f"responder errors {errors}" in session.summary()


async def test_a_hanging_responder_drops_its_own_input_and_is_cancelled_at_the_end(
    start_bridge, caplog
):
    server = await start_bridge(
        "echo,tests.responders:Hangs", responder_queue_frames=50, responder_stop_timeout_s=0.5
    )
    url = f"ws://127.0.0.1:{server.port}/bots/hangs"
    with caplog.at_level(logging.WARNING, logger="bridge"):
        report = await simulate([url], WAV, OPTS)
        session = server.sessions.sessions["hangs"]
        await asyncio.wait_for(session.end("test over"), 3)
    assert_echo_intact(report)
    hung = session.runners[1]
    assert hung.dropped["audio"] > 100 and session.runners[0].dropped == {}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Hangs is behind" in m for m in messages) == 1  # logged once, then counted
    assert any("did not stop within 0.5 s; cancelled" in m for m in messages)
    assert "'audio'" in session.summary()
