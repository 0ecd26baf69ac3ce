"""Every setting of the server, each bound named, with its default and its limits."""

from __future__ import annotations

from ipaddress import ip_address
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
    lead_ms: float = Field(
        80.0,
        gt=0,
        le=500,
        description="audio sent ahead of the bot's playback (at least an input chunk, up to "
        "output_message_ms, and a frame)",
    )
    prebuffer_ms: float = Field(
        40.0,
        ge=0,
        le=1000,
        description="speech streamed in is held this long before it starts (again after a gap)",
    )
    output_message_ms: int = Field(
        100,
        ge=10,
        le=100,
        description="most speech in one message to the bot: the frames due together go in one",
    )
    output_min_message_ms: int = Field(
        40,
        ge=0,
        le=100,
        description="speech waits to fill messages this long (while a frame of lead is left)",
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
    admit_max_core_share: float = Field(
        0.9,
        ge=0,
        le=1,
        description="new sessions get 503 while the event loop used this share of its core "
        "over the admission window (0: never)",
    )
    admit_window_s: float = Field(
        5.0, ge=1, le=60, description="the window the loop's core share is measured over"
    )
    gc_reclaim_sessions: int = Field(
        64, ge=1, description="ended sessions a cycle keeps alive before a full collection"
    )
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
    vad_onset_ms: int = Field(
        60, ge=10, le=500, description="voice this long pauses the bot's speech (adaptive policy)"
    )
    turn_policy: Literal["fixed", "adaptive"] = Field(
        "adaptive",
        description="adaptive: docs/turns.md; fixed: each VAD segment is a turn, barges in at once",
    )
    turn_vad_stop_ms: int = Field(
        200, ge=10, le=1000, description="adaptive: the VAD's quiet window (pauses it sees)"
    )
    turn_min_delay_ms: float = Field(
        400.0, ge=0, le=10000, description="adaptive: the shortest delay, for pauses known short"
    )
    turn_initial_delay_ms: float = Field(
        750.0, ge=0, le=10000, description="adaptive: the delay until a speaker's pauses are known"
    )
    turn_max_delay_ms: float = Field(
        3000.0, ge=0, le=30000, description="adaptive: the longest endpointing delay"
    )
    turn_continue_ms: float = Field(
        1000.0, ge=0, le=10000, description="speech this soon after an endpoint continues the turn"
    )
    interruption_quiet_ms: float = Field(
        200.0, ge=20, le=5000, description="a paused bot resumes once the voice was quiet this long"
    )
    echo_guard: bool = Field(True, description="the bot's own speech heard back is no speech")
    echo_min_delay_ms: float = Field(
        150.0, ge=0, le=2000, description="shortest delay of the bot's echo in the meeting audio"
    )
    echo_max_delay_ms: float = Field(
        600.0, ge=0, le=2000, description="longest delay of the bot's echo in the meeting audio"
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
    # Meeting BaaS webhooks (POST /webhooks/meetingbaas on this port), artifacts, auto-join
    webhook_svix_secret: SecretStr | None = Field(
        None, description="v2 account webhooks: the endpoint's whsec_ secret(s), comma-separated"
    )
    webhook_callback_secret: SecretStr | None = Field(
        None, description="v2 per-bot callbacks: the secret sent in x-mb-secret"
    )
    webhook_api_key: SecretStr | None = Field(
        None, description="v1 webhooks: the API key they carry (default MEETING_BAAS_API_KEY)"
    )
    webhook_max_body_bytes: int = Field(1 << 20, ge=1024, description="larger deliveries: 413")
    webhook_max_header_bytes: int = Field(16384, ge=1024, description="larger headers: 431")
    webhook_timeout_s: float = Field(10.0, gt=0, description="a POST must be whole by then: 408")
    webhook_max_connections: int = Field(64, ge=1, description="POSTs read at once; more: 503")
    webhook_dedupe_keys: int = Field(20000, ge=1, description="delivery ids remembered")
    webhook_dedupe_window_s: float = Field(
        21600.0, gt=0, description="a delivery seen this recently is a duplicate (SVIX: ~3 h)"
    )
    webhook_log_window_s: float = Field(60.0, gt=0, description="refusals logged once per window")
    webhook_pending_bots: int = Field(
        1000, ge=1, description="bots remembered: bound to sessions, or with statuses waiting"
    )
    webhook_pending_per_bot: int = Field(32, ge=1, description="statuses kept before it connects")
    fetch_artifacts: Path | None = Field(
        None, description="download each completed bot's transcript and audio here"
    )
    artifact_max_bytes: int = Field(2 << 30, ge=1024, description="a larger artifact is abandoned")
    artifact_queue_size: int = Field(64, ge=1, description="completed bots awaiting downloads")
    auto_join: str | None = Field(
        None, description="calendar ids (comma-separated) whose events get a speaking bot"
    )
    calendar_request_interval_s: float = Field(
        0.25, ge=0, description="between auto-join API writes (PAYG allows 5 a second)"
    )
    calendar_queue_size: int = Field(1000, ge=1, description="calendar events awaiting a bot")
    # Security and robustness (docs/security.md): closed by default, every cap named.
    allow_unsigned: bool = Field(
        False, description="serve a non-loopback host without --secret (anyone may connect)"
    )
    allowed_origins: tuple[str, ...] = Field(
        (), description="browser Origins admitted (repeatable); bots send none"
    )
    metrics_token: SecretStr | None = Field(
        None, description="/metrics needs 'Authorization: Bearer <token>' when set"
    )
    max_pending_handshakes: int = Field(
        256, ge=1, description="connections not yet through the handshake; more are dropped"
    )
    max_connections_per_address: int = Field(
        4096, ge=1, description="open connections from one client address; more are refused"
    )
    max_control_clients: int = Field(
        8, ge=1, description="control channels open on one session; more get 429"
    )
    max_play_s: float = Field(
        600.0, gt=0, le=3600, description="longest audio a control play may send (decoded)"
    )
    refusal_log_window_s: float = Field(
        10.0, gt=0, description="refusals from an address: one line, then a count a window"
    )

    @model_validator(mode="after")
    def _closed_by_default(self) -> BridgeConfig:
        if self.secret is None and not self.allow_unsigned and not is_loopback(self.host):
            raise ValueError(
                f"serving {self.host or 'every interface'} without --secret would let anyone who "
                "reaches it list, join and control sessions: set --secret (or SPEAKBRIDGE_SECRET)"
                ", or --allow-unsigned to serve it open on purpose"
            )
        return self

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
    def _turn_delays_ordered(self) -> BridgeConfig:
        if not self.turn_min_delay_ms <= self.turn_initial_delay_ms <= self.turn_max_delay_ms:
            raise ValueError("need turn_min_delay_ms <= turn_initial_delay_ms <= turn_max_delay_ms")
        if self.echo_min_delay_ms > self.echo_max_delay_ms:
            raise ValueError("echo_min_delay_ms must not exceed echo_max_delay_ms")
        return self

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


def is_loopback(host: str) -> bool:
    """Whether host names only this machine (localhost or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname or "" (every interface): it may be reachable from outside
