"""The peer for comparison: a pipecat echo pipeline per WebSocket, raw PCM like the bot's.

    .venv/bin/python -m benchmarks.peer_pipecat --port 8766 [--rate 24000]

What pipecat's docs recommend for a websocket bot (FastAPI + FastAPIWebsocketTransport),
with a serializer for the Meeting BaaS wire format (binary s16le frames, no envelope) and a
processor that turns each input audio frame into output audio: the same echo that
speakbridge's `echo -o mode=live` does, so benchmarks/load.py can drive both alike.
Needs the `peer` extra (pipecat-ai[websocket], fastapi, uvicorn).
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, WebSocket
from pipecat.frames.frames import Frame, InputAudioRawFrame, OutputAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.runner import PipelineRunner
from pipecat.pipeline.task import PipelineParams, PipelineTask
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.base_serializer import FrameSerializer
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)

RATE = 24000


class RawPcmSerializer(FrameSerializer):
    """Binary messages are s16le mono audio at RATE; text (hello, speakers) is ignored."""

    async def serialize(self, frame: Frame) -> bytes | None:
        return frame.audio if isinstance(frame, OutputAudioRawFrame) else None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        if isinstance(data, bytes):
            return InputAudioRawFrame(audio=data, sample_rate=RATE, num_channels=1)
        return None


class Echo(FrameProcessor):
    """Each input audio frame goes back out as output audio."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            out = OutputAudioRawFrame(
                audio=frame.audio, sample_rate=frame.sample_rate, num_channels=1
            )
            await self.push_frame(out)
        else:
            await self.push_frame(frame, direction)


app = FastAPI()


@app.get("/healthz")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/bots/{session_id}")
async def bot(websocket: WebSocket, session_id: str) -> None:
    await websocket.accept()
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_in_sample_rate=RATE,
            audio_out_enabled=True,
            audio_out_sample_rate=RATE,
            add_wav_header=False,
            serializer=RawPcmSerializer(),
        ),
    )
    pipeline = Pipeline([transport.input(), Echo(), transport.output()])
    task = PipelineTask(
        pipeline, params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE)
    )

    @transport.event_handler("on_client_disconnected")
    async def gone(transport: FastAPIWebsocketTransport, client: WebSocket) -> None:
        await task.cancel()

    await PipelineRunner(handle_sigint=False).run(task)


def main() -> None:
    global RATE
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--rate", type=int, default=24000)
    args = parser.parse_args()
    RATE = args.rate
    print(f"pipecat echo listening on ws://127.0.0.1:{args.port}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", ws="websockets")


if __name__ == "__main__":
    main()
