"""Every setting of the server, each bound named, with its default and its limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bridge.audio.resample import Quality
from bridge.server.limits import parse_networks


class BridgeConfig(BaseModel):
    """Server settings; the CLI fills them from flags or SPEAKBRIDGE_* environment variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every one)")
    port: int = Field(8765, ge=0, le=65535, description="port to listen on (0: any free one)")
    public_url: str | None = Field(
        None, description="ws(s)://host[:port] the bot can reach (with --workers: the balancer's)"
    )
    rate: Literal[16000, 24000, 32000, 48000] = Field(
        24000, description="sample rate of a bot whose hello and URL name none (gen1)"
    )
    bot_name: str | None = Field(
        None, description="the bot's name in the meeting: its roster entry is the bot itself"
    )
    frame_ms: Literal[10, 20, 30] = Field(20, description="frame of the VAD, responders, pacer")
    # twice the prebuffer: the room above it absorbs a live stream's late frames as extra lead
    # at the bot; with none, they wait in the bridge and are shed (docs/design.md, "Pacing")
    lead_ms: float = Field(80.0, gt=0, le=500, description="audio sent ahead of the bot's playback")
    prebuffer_ms: float = Field(
        40.0,
        ge=0,
        le=1000,
        description="speech streamed in is held this long before it starts (again after a gap)",
    )
    prefetch_s: float = Field(
        1.5, ge=0, description="queued speech above which the next utterance waits to be made"
    )
    grace_s: float = Field(30.0, ge=0, description="how long a session outlives its sockets")
    ended_ttl_s: float = Field(
        600.0, ge=0, description="a session ended on purpose refuses reconnects (410) this long"
    )
    max_ended_sessions: int = Field(
        100_000, ge=1, description="ids of sessions ended on purpose remembered at most"
    )
    max_message_bytes: int = Field(256 * 1024, ge=1024, description="larger frames close 1009")
    max_sessions: int = Field(1000, ge=1, description="more are refused with 503")
    max_sockets_per_session: int = Field(2, ge=1, le=8, description="a bot opens one or two")
    secret: SecretStr | None = Field(None, description="HMAC key: only signed URLs are admitted")
    token_ttl_s: float = Field(86400.0, gt=0, description="lifetime of URLs the launcher signs")
    handshake_failures: int = Field(
        20, ge=1, description="failed handshakes per address and window before it gets 429"
    )
    handshake_failures_window_s: float = Field(
        60.0, gt=0, description="the window of handshake_failures; a 429 lasts until it passes"
    )
    trusted_proxies: str = Field(
        "",
        description="load balancers in front (comma-separated addresses or CIDRs): the client "
        "of their requests is the one X-Forwarded-For names",
    )
    input_buffer_ms: int = Field(200, ge=30, description="ring buffer between socket and framer")
    responder_queue_frames: int = Field(500, ge=1, description="frames+events awaiting a responder")
    responder_start_timeout_s: float = Field(
        2.0, gt=0, description="the bot's socket waits this long at most for responders to start"
    )
    responder_stop_timeout_s: float = Field(
        5.0,
        gt=0,
        description="a responder still busy this long after the session ends is cancelled",
    )
    event_queue_size: int = Field(1000, ge=1, description="events awaiting a control client")
    playback_buffer_s: float = Field(
        3.0, gt=0, le=600, description="queued speech awaiting pacing; a producer beyond it waits"
    )
    max_pending_utterances: int = Field(32, ge=1, description="speak() calls awaiting the queue")
    resample_quality: Quality = Field("HQ", description="soxr quality of speech out and listeners")
    vad_aggressiveness: Literal[0, 1, 2, 3] = Field(3, description="webrtcvad's mode")
    vad_start_ms: int = Field(200, ge=10, le=1000, description="speech window that opens a segment")
    vad_stop_ms: int = Field(500, ge=10, description="quiet window that closes a segment")
    vad_max_flatness: float = Field(
        0.1, gt=0, le=1, description="spectral flatness above which a frame is noise (1: off)"
    )
    media_dir: Path | None = Field(None, description="WAVs the control channel may play by path")
    barge_in: bool = Field(True, description="user speech interrupts the bot")
    drain_timeout_s: float = Field(
        60.0, ge=0, description="on SIGTERM, how long live sessions may go on (SIGINT: 2 s)"
    )
    watchdog_threshold_s: float = Field(
        0.25, gt=0, description="a loop blocked this long is logged with its culprit"
    )
    playback_backlog_bytes: int = Field(
        65536, ge=4096, description="unsent bytes to a bot above which frames are dropped"
    )
    close_timeout_s: float = Field(
        2.0, gt=0, description="wait for the peer's close frame; a half-open socket drops after"
    )
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto", description="auto: uvloop when installed (it is, but on Windows), else asyncio"
    )
    ping_interval_s: float = Field(20.0, gt=0, description="keepalive ping to each bot socket")
    ping_timeout_s: float = Field(
        20.0, gt=0, description="an unanswered ping drops the socket after this"
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="processes, one per core: worker i on port + i, behind a load balancer",
    )
    worker: int = Field(
        -1,
        ge=-1,
        description="set by the supervisor: this process's index",
        json_schema_extra={"internal": True},  # not a user's setting: hidden from help and docs
    )

    @model_validator(mode="after")
    def _prefetch_within_buffer(self) -> BridgeConfig:
        if self.prefetch_s >= self.playback_buffer_s:
            raise ValueError("prefetch_s must be below playback_buffer_s")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, spec: str) -> str:
        parse_networks(spec)  # raises ValueError, naming the bad entry
        return spec

    @model_validator(mode="after")
    def _workers_have_ports(self) -> BridgeConfig:
        if self.workers > 1 and self.port == 0:
            raise ValueError("workers need a fixed port: worker i listens on port + i")
        if self.worker >= self.workers:
            raise ValueError(f"worker {self.worker} of {self.workers} does not exist")
        return self

    @property
    def worker_index(self) -> int:
        """This process's worker (0 when it runs alone or was started without a supervisor)."""
        return max(self.worker, 0)

    @property
    def listen_port(self) -> int:
        """The port this process listens on: its worker's."""
        return self.port + self.worker_index
