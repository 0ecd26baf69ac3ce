"""The README's example responder, run as a user would: its code, loaded as module:Class."""

import re
import sys
from pathlib import Path

import numpy as np

from bridge.codecs.wav import read_wav
from bridge.sim.simulator import SimulatorOptions, simulate
from tests.sounds import ALSA

README = Path(__file__).parent.parent / "README.md"


def example_code() -> str:
    text = README.read_text()
    match = re.search(r"<!-- doc-test: file my_responders.py -->\s*```python\n(.*?)```", text, re.S)
    assert match, "the README lost its example responder"
    return match.group(1)


async def test_readme_example_responder_beeps_at_each_pause(start_bridge, tmp_path, monkeypatch):
    (tmp_path / "my_responders.py").write_text(example_code())
    monkeypatch.syspath_prepend(str(tmp_path))
    server = await start_bridge("my_responders:Beeper", ("freq=440",))
    url = f"ws://127.0.0.1:{server.port}/bots/readme"
    out = tmp_path / "heard.wav"
    report = await simulate(
        [url],
        [str(ALSA / "Front_Left.wav")],
        SimulatorOptions(lead_in_s=0.3, listen_s=0.5),
        str(out),
    )
    sys.modules.pop("my_responders", None)
    assert report.bytes_received == 2 * round(0.2 * 24000)  # one 200 ms beep at the bot's rate
    assert report.utterances[0].reply_latency_ms is not None
    heard, rate = read_wav(out)
    beep = heard[np.flatnonzero(heard)[0] :][: rate // 5].astype(float)
    peak_hz = np.argmax(np.abs(np.fft.rfft(beep))) * rate / len(beep)
    assert abs(peak_hz - 440) < 10
