"""The `speakbridge` command line: serve, simulate, responders."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from pydantic import SecretStr, ValidationError
from pydantic_core import ErrorDetails

from bridge import __version__
from bridge.config import BridgeConfig
from bridge.deploy import balancer
from bridge.environment import config_defaults, env_name, is_internal
from bridge.logs import setup_logging
from bridge.meetingbaas.artifacts import ArtifactFetcher
from bridge.meetingbaas.autojoin import AutoJoin
from bridge.meetingbaas.calendars import Calendars
from bridge.meetingbaas.client import (
    DEFAULT_BASE_URL,
    DEFAULT_BOT_NAME,
    ApiError,
    BotSpec,
    MeetingBaasClient,
    iso_time,
)
from bridge.meetingbaas.launcher import SessionUrls, launch, session_urls, tied_to_session
from bridge.meetingbaas.schedules import describe, join_time
from bridge.plugins import registry
from bridge.responder import Responder, SessionHandle
from bridge.server import loops
from bridge.server.server import BridgeServer
from bridge.server.session import ResponderFactory
from bridge.server.workers import supervise
from bridge.sim.control_client import control_client
from bridge.sim.generations import PROFILES
from bridge.sim.simulator import SimulatorOptions, simulate
from bridge.wire.protocol import SUPPORTED_RATES
from bridge.wire.signing import control_url

ENV_PREFIX = "SPEAKBRIDGE_"
log = logging.getLogger("bridge")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `speakbridge` and `python -m bridge`; returns the exit status."""
    try:
        config_defaults()  # a bad SPEAKBRIDGE_* value is one line, whatever the command
    except ValueError as exc:
        print(f"speakbridge: error: {exc}", file=sys.stderr)
        return 2
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):  # `speakbridge` alone: what it can do
        parser.print_help()
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the workers' command lines
    setup_logging(args.log_level, args.log_format)
    try:
        return args.run(args)
    except (registry.ResponderError, ValueError, OSError) as exc:
        print(f"speakbridge: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speakbridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"speakbridge {__version__}")
    logging_flags = argparse.ArgumentParser(add_help=False)
    logging_flags.add_argument(
        "--log-level",
        default=os.environ.get(f"{ENV_PREFIX}LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    logging_flags.add_argument(
        "--log-format",
        default=os.environ.get(f"{ENV_PREFIX}LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="json: one object a line, with session and bot ids (env SPEAKBRIDGE_LOG_FORMAT)",
    )
    commands = parser.add_subparsers(metavar="COMMAND")
    commands.add_parser = functools.partial(  # type: ignore[method-assign]
        commands.add_parser, parents=[logging_flags]
    )

    serve = commands.add_parser("serve", help="run the bridge server")
    _add_config_flags(serve)
    _add_responder_flags(serve)
    _add_api_flags(serve)  # --auto-join's API calls; v1 webhooks carry this key
    serve.set_defaults(run=_serve)

    sim = commands.add_parser("simulate", help="act as a Meeting BaaS bot against a bridge")
    sim.add_argument(
        "urls",
        nargs="+",
        metavar="URL",
        help="one URL (one socket both ways) or two: the output URL, then the input URL",
    )
    sim.add_argument(
        "--wav", action="append", required=True, help="a recording to speak; repeatable"
    )
    sim.add_argument(
        "--bot",
        default="gen3",
        choices=list(PROFILES),
        help="which bot generation to act as (default gen3, today's bot; custom: --chunk-ms)",
    )
    sim.add_argument("--rate", type=int, default=24000, choices=list(SUPPORTED_RATES))
    sim.add_argument("--chunk-ms", type=int, default=20, help="message length of --bot custom")
    sim.add_argument(
        "--speaker", action="append", help="a participant's name; recordings go round them"
    )
    sim.add_argument("--bot-name", default="speakbridge", help="the bot's own roster entry")
    sim.add_argument(
        "--waiting-room-s", type=float, default=0.0, help="wait this long before being admitted"
    )
    sim.add_argument("--burst-chunks", type=int, default=10)
    sim.add_argument(
        "--start-late-ms",
        type=float,
        default=0.0,
        help="send the first chunk this late and the rest on time (a slow start)",
    )
    sim.add_argument("--gap-s", type=float, default=2.0, help="silence after each recording")
    sim.add_argument("--listen-s", type=float, default=2.0, help="listening time after the last")
    sim.add_argument("--out", help="write what came back (on the bot's playback timeline) to a WAV")
    sim.set_defaults(run=_simulate)

    launch = commands.add_parser(
        "launch", help="send a Meeting BaaS bot into a meeting, streaming to this bridge"
    )
    launch.add_argument("meeting_url", metavar="MEETING_URL")
    _add_api_flags(launch)
    launch.add_argument(
        "--transcription",
        metavar="PROVIDER",
        help="v2 transcription mode: the bot streams transcripts (gladia, deepgram, ...) on its "
        "output socket instead of audio, and still plays what it gets on its input socket",
    )
    _add_bot_flags(launch)
    launch.add_argument(
        "--leave-after",
        type=float,
        metavar="SECONDS",
        help="remove the bot after this long (default: at Ctrl-C)",
    )
    launch.add_argument("--serve", action="store_true", help="also run the bridge in this process")
    _add_config_flags(launch)
    _add_responder_flags(launch)
    launch.set_defaults(run=_launch)

    leave = commands.add_parser("leave", help="remove a Meeting BaaS bot from its meeting")
    leave.add_argument("bot_id", metavar="BOT_ID")
    _add_api_flags(leave)
    leave.set_defaults(run=_leave)

    say = commands.add_parser("say", help="make a session's bot say something")
    say.add_argument("session", metavar="SESSION")
    say.add_argument("text", metavar="TEXT")
    say.add_argument("--voice")
    _add_control_flags(say)
    say.set_defaults(run=_say)

    events = commands.add_parser("events", help="print a session's events as JSON lines")
    events.add_argument("session", metavar="SESSION")
    events.add_argument("--count", type=int, help="stop after this many events")
    _add_control_flags(events)
    events.set_defaults(run=_events)

    _add_lb_config(commands)
    _add_meetingbaas_commands(commands)

    listing = commands.add_parser("responders", help="list the installed responders")
    listing.set_defaults(run=lambda _: print("\n".join(registry.available())) or 0)
    return parser


def _add_lb_config(commands: argparse._SubParsersAction) -> None:
    lb = commands.add_parser(
        "lb-config",
        help="write an HAProxy or nginx configuration for many bridges behind one address",
        description="Hash each session id onto the bridges, terminate TLS, health-check /healthz "
        "(docs/deployment.md).",
    )
    lb.add_argument("--lb", choices=balancer.BALANCERS, required=True)
    lb.add_argument(
        "--backend",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="a bridge (its `serve --port`); repeat for each machine",
    )
    lb.add_argument(
        "--workers",
        type=int,
        default=1,
        help="each backend's `serve --workers`: its ports PORT to PORT+N-1 become backends",
    )
    lb.add_argument(
        "--listen", metavar="[HOST:]PORT", help="public address (default 443 with --cert, else 80)"
    )
    lb.add_argument("--cert", metavar="PEM", help="certificate chain (and key, for HAProxy): TLS")
    lb.add_argument("--key", metavar="PEM", help="nginx: the key, when not in --cert's file")
    lb.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    lb.set_defaults(run=_lb_config)


def _lb_config(args: argparse.Namespace) -> int:
    text = balancer.render(
        args.lb,
        balancer.backends(args.backend, args.workers),
        balancer.parse_address(args.listen, "*") if args.listen else None,
        balancer.tls(args.cert, args.key, args.lb),
    )
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _add_responder_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--responder",
        action="append",
        help="entry-point name or module:Class; repeat for several (env SPEAKBRIDGE_RESPONDER, "
        "comma-separated; default echo)",
    )
    parser.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the first responder, or NAME.KEY=VALUE of the responder NAME",
    )


def _add_control_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(f"{ENV_PREFIX}URL", "ws://127.0.0.1:8765"),
        help="the bridge, or the load balancer in front of several (env SPEAKBRIDGE_URL, "
        "default ws://127.0.0.1:8765)",
    )
    parser.add_argument(
        "--secret",
        default=os.environ.get(f"{ENV_PREFIX}SECRET"),
        help="the server's secret, to sign the control URL (env SPEAKBRIDGE_SECRET)",
    )


def _control_url(args: argparse.Namespace) -> str:
    return control_url(args.url, args.secret, args.session, ttl_s=300)


def _say(args: argparse.Namespace) -> int:
    command = {"type": "say", "text": args.text} | ({"voice": args.voice} if args.voice else {})
    return asyncio.run(control_client(_control_url(args), command, None))


def _events(args: argparse.Namespace) -> int:
    return asyncio.run(control_client(_control_url(args), None, args.count))


def _add_api_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-version", choices=["v1", "v2"], default="v2")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("MEETING_BAAS_API_KEY"),
        help="Meeting BaaS API key (env MEETING_BAAS_API_KEY)",
    )
    parser.add_argument(
        "--api-base-url",
        default=os.environ.get("MEETING_BAAS_API_URL", DEFAULT_BASE_URL),
        help=f"API base URL (env MEETING_BAAS_API_URL, default {DEFAULT_BASE_URL})",
    )


def _client(args: argparse.Namespace) -> MeetingBaasClient:
    return MeetingBaasClient(args.api_key or "", args.api_version, args.api_base_url)


# Settings that take several values: one flag each (repeatable), the env var comma-separated.
REPEATABLE_FLAGS = {"allowed_origins": "--allowed-origin"}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    env_defaults = config_defaults()
    for name, info in BridgeConfig.model_fields.items():
        flag, env = "--" + name.replace("_", "-"), env_name(name)
        default = env_defaults.get(name, info.default)
        helptext = f"{info.description or ''} (env {env}, default {info.default})".strip()
        if is_internal(info):
            helptext = argparse.SUPPRESS
        if name in REPEATABLE_FLAGS:
            parser.add_argument(
                REPEATABLE_FLAGS[name],
                dest=name,
                action="append",
                default=list(default),
                help=f"{info.description} (env {env}, comma-separated)",
            )
        elif isinstance(info.default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=helptext
            )
        else:
            kind = type(info.default) if info.default is not None else str
            parser.add_argument(flag, type=kind, default=default, help=helptext)


def _config(args: argparse.Namespace) -> BridgeConfig:
    try:
        return BridgeConfig(**{name: getattr(args, name) for name in BridgeConfig.model_fields})
    except ValidationError as exc:
        raise ValueError("; ".join(map(_problem, exc.errors()))) from None


def _problem(error: ErrorDetails) -> str:
    """A validation error as the user typed it: the flag, or a rule between several flags."""
    if error["loc"]:
        return f"--{error['loc'][0]}: {error['msg']}".replace("_", "-")
    return error["msg"].removeprefix("Value error, ")


def responder_factory(spec: str, options: list[str]) -> ResponderFactory:
    """Load, validate and check a responder once; the factory builds one per session."""
    cls = registry.load(spec)
    validated = registry.parse_options(cls, options, spec)
    try:
        cls.check(validated)
    except ValueError as exc:
        raise registry.ResponderError(f"responder {spec!r} cannot start: {exc}") from None

    def make(session: SessionHandle) -> Responder:
        return cls(validated, session)  # type: ignore[arg-type]

    return make


def responder_factories(specs: list[str], options: list[str]) -> list[ResponderFactory]:
    """One factory per --responder; `-o name.key=value` goes to the responder `name`,
    a plain `-o key=value` to the first one."""
    scoped: dict[str, list[str]] = {spec: [] for spec in specs}
    for option in options:
        name, dot, rest = option.partition(".")
        if dot and name in scoped and "=" in rest and "=" not in name:
            scoped[name].append(rest)
        else:
            scoped[specs[0]].append(option)
    return [responder_factory(spec, scoped[spec]) for spec in specs]


def _responders(args: argparse.Namespace) -> list[ResponderFactory]:
    env = os.environ.get(f"{ENV_PREFIX}RESPONDER")
    specs = args.responder or (env.split(",") if env else ["echo"])
    return responder_factories(specs, args.option)


def _serve(args: argparse.Namespace) -> int:
    config = _with_api_key(_config(args), args)
    if config.auto_join:  # its bots are named, so each session knows the bot's roster entry
        config = _with_bot_name(config)
    if config.auto_join and not (config.public_url and args.api_key):
        raise ValueError("--auto-join needs --public-url and --api-key (or MEETING_BAAS_API_KEY)")
    factories = _responders(args)  # checked here, so a bad responder stops the supervisor too
    if config.workers > 1 and config.worker < 0:
        print(
            f"speakbridge: {config.workers} workers on ports {config.port}-"
            f"{config.port + config.workers - 1}, the backends of a load balancer that hashes "
            "the session id (speakbridge lb-config writes its configuration)",
            flush=True,
        )
        return asyncio.run(supervise(args.argv, config.workers))
    return loops.run(_serve_until_signalled(config, factories, args), config.event_loop)


async def _serve_until_signalled(
    config: BridgeConfig, factories: list[ResponderFactory], args: argparse.Namespace
) -> int:
    server = BridgeServer(config, factories)
    signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    await server.start()
    print(server.banner(), flush=True)
    async with contextlib.AsyncExitStack() as services:
        await _meetingbaas_services(server, args, services)
        status = await _until_signalled(server, signals)
    return status


async def _until_signalled(server: BridgeServer, signals: asyncio.Queue[signal.Signals]) -> int:
    config = server.config
    first = await signals.get()
    timeout = (
        config.drain_timeout_s if first == signal.SIGTERM else min(2.0, config.drain_timeout_s)
    )
    drain = asyncio.create_task(server.drain(timeout))
    again = asyncio.create_task(signals.get())
    await asyncio.wait([drain, again], return_when=asyncio.FIRST_COMPLETED)
    if not drain.done():  # a second signal: no more waiting
        log.info("second signal: ending every session now")
        drain.cancel()
        await server.close()
    again.cancel()
    return 0


def _launch(args: argparse.Namespace) -> int:
    config = _with_bot_name(_with_api_key(_config(args), args))
    urls = session_urls(config, args.split or args.transcription is not None)
    spec = _bot_spec(args, config, urls, args.meeting_url)
    server = None
    if args.serve:
        if config.workers > 1:
            raise ValueError("--serve runs one process: start `speakbridge serve --workers N`")
        server = BridgeServer(config, _responders(args))
    print(f"session {urls.session_id}", flush=True)
    return loops.run(
        _launch_until_signalled(_client(args), spec, args.leave_after, server, urls.session_id),
        config.event_loop,
    )


async def _launch_until_signalled(
    client: MeetingBaasClient,
    spec: BotSpec,
    leave_after: float | None,
    server: BridgeServer | None,
    session_id: str,
) -> int:
    stop = _stop_on_signals()
    async with client:
        try:
            await launch(client, spec, stop, leave_after, server, session_id)
        except ApiError as exc:
            print(f"speakbridge: {exc}", file=sys.stderr)
            return 1
    return 0


def _leave(args: argparse.Namespace) -> int:
    async def leave() -> int:
        async with _client(args) as client:
            try:
                await client.remove_bot(args.bot_id)
            except ApiError as exc:
                print(f"speakbridge: {exc}", file=sys.stderr)
                return 1
        print(f"bot {args.bot_id} is leaving")
        return 0

    return asyncio.run(leave())


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (call inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _simulate(args: argparse.Namespace) -> int:
    if len(args.urls) > 2:
        raise ValueError("give one URL (both ways) or two (output, then input)")
    opts = SimulatorOptions(
        bot=args.bot,
        speakers=tuple(args.speaker or ("Simulated Speaker",)),
        bot_name=args.bot_name,
        waiting_room_s=args.waiting_room_s,
        sample_rate=args.rate,
        chunk_ms=args.chunk_ms,
        burst_chunks=args.burst_chunks,
        start_late_ms=args.start_late_ms,
        gap_s=args.gap_s,
        listen_s=args.listen_s,
    )
    report = asyncio.run(simulate(args.urls, args.wav, opts, args.out))
    print(report)
    return 0


# Meeting BaaS: bots' options, scheduled bots, calendars, the services of `serve`


def _add_bot_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--split",
        action="store_true",
        help="two sockets (output and input URLs) instead of one both ways",
    )
    parser.add_argument("--entry-message")
    parser.add_argument("--bot-image")
    parser.add_argument("--recording-mode", choices=["speaker_view", "gallery_view", "audio_only"])
    parser.add_argument(
        "--webhook-url", help="where the bot's webhooks go (default: this bridge's, --public-url)"
    )
    parser.add_argument(
        "--webhook-secret",
        default=os.environ.get("MEETING_BAAS_WEBHOOK_SECRET"),
        help="v2: x-mb-secret of --webhook-url's callbacks (default --webhook-callback-secret)",
    )
    parser.add_argument("--waiting-room-timeout", type=int)
    parser.add_argument("--noone-joined-timeout", type=int)


def _bot_spec(
    args: argparse.Namespace, config: BridgeConfig, urls: SessionUrls, meeting_url: str
) -> BotSpec:
    """The bot of the command line, streaming to urls, its webhooks tied to the session."""
    transcription = getattr(args, "transcription", None)
    spec = BotSpec(
        meeting_url=meeting_url,
        bot_name=config.bot_name or DEFAULT_BOT_NAME,
        output_url=urls.output_url,
        input_url=urls.input_url,
        sample_rate=config.rate,
        streaming_mode="transcription" if transcription else "audio",
        transcription_provider=transcription,
        entry_message=args.entry_message,
        bot_image=args.bot_image,
        recording_mode=args.recording_mode,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        waiting_room_timeout=args.waiting_room_timeout,
        noone_joined_timeout=args.noone_joined_timeout,
    )
    spec, notes = tied_to_session(spec, config, urls.session_id, args.api_version)
    for note in notes:
        print(f"note: {note}", flush=True)
    return spec


def _with_bot_name(config: BridgeConfig) -> BridgeConfig:
    """The bot's name, known: its roster entry is then known to be the bot itself."""
    if config.bot_name is None:
        return config.model_copy(update={"bot_name": DEFAULT_BOT_NAME})
    return config


def _with_api_key(config: BridgeConfig, args: argparse.Namespace) -> BridgeConfig:
    """v1 webhooks carry the account's API key: check them against --api-key by default."""
    if config.webhook_api_key is None and getattr(args, "api_key", None):
        return config.model_copy(update={"webhook_api_key": SecretStr(args.api_key)})
    return config


def _add_meetingbaas_commands(commands: argparse._SubParsersAction) -> None:
    schedule = commands.add_parser(
        "schedule", help="schedule a speaking bot to join a meeting later, streaming here"
    )
    schedule.add_argument("meeting_url", metavar="MEETING_URL")
    schedule.add_argument(
        "--at", required=True, metavar="TIME", help="ISO-8601 (2026-05-01T10:00:00Z) or +10m, +2h"
    )
    _add_api_flags(schedule)
    _add_bot_flags(schedule)
    _add_config_flags(schedule)
    schedule.set_defaults(run=_schedule)

    scheduled = commands.add_parser("scheduled", help="list scheduled bots (v2), or cancel one")
    scheduled.add_argument("--cancel", metavar="BOT_ID", help="cancel this scheduled bot")
    _add_api_flags(scheduled)
    scheduled.set_defaults(run=_scheduled)

    calendar = commands.add_parser("calendar", help="calendars and their events' speaking bots")
    actions = calendar.add_subparsers(required=True, metavar="ACTION")
    connect = actions.add_parser("connect", help="connect a Google or Microsoft calendar")
    connect.add_argument("--platform", choices=["google", "microsoft"], required=True)
    connect.add_argument("--oauth-client-id", required=True)
    connect.add_argument("--oauth-client-secret", default=os.environ.get("OAUTH_CLIENT_SECRET"))
    connect.add_argument("--oauth-refresh-token", default=os.environ.get("OAUTH_REFRESH_TOKEN"))
    connect.add_argument("--oauth-tenant-id", help="Microsoft only (default common)")
    connect.add_argument("--raw-calendar-id", help="which calendar (default: the primary one)")
    connect.set_defaults(run=_calendar_connect)
    listing = actions.add_parser("list", help="the connected calendars")
    listing.set_defaults(run=_calendar_list)
    events = actions.add_parser("events", help="a calendar's upcoming events")
    events.add_argument("calendar_id", metavar="CALENDAR_ID")
    events.set_defaults(run=_calendar_events)
    book = actions.add_parser("schedule", help="a speaking bot for one event, streaming here")
    book.add_argument("calendar_id", metavar="CALENDAR_ID")
    book.add_argument("event_id", metavar="EVENT_ID")
    _add_bot_flags(book)
    _add_config_flags(book)
    book.set_defaults(run=_calendar_schedule)
    unbook = actions.add_parser("unschedule", help="remove the bot of one event")
    unbook.add_argument("calendar_id", metavar="CALENDAR_ID")
    unbook.add_argument("event_id", metavar="EVENT_ID")
    unbook.set_defaults(run=_calendar_unschedule)
    for parser in (connect, listing, events, book, unbook):
        _add_api_flags(parser)


def _api_call(args: argparse.Namespace, call: Callable[[MeetingBaasClient], Awaitable[int]]) -> int:
    """Run call with a client; an API refusal is one line on stderr and exit status 1."""

    async def run() -> int:
        async with _client(args) as client:
            try:
                return await call(client)
            except ApiError as exc:
                print(f"speakbridge: {exc}", file=sys.stderr)
                return 1

    return asyncio.run(run())


def _schedule(args: argparse.Namespace) -> int:
    config = _config(args)
    at = join_time(args.at)
    urls = session_urls(config, args.split, joins_at=at)
    spec = _bot_spec(args, config, urls, args.meeting_url).model_copy(
        update={"start_time": int(at), "reserved": args.api_version == "v1"}
    )

    async def call(client: MeetingBaasClient) -> int:
        bot_id = await client.create_bot(spec)
        print(f"session {urls.session_id}: bot {bot_id} joins {spec.meeting_url} at {iso_time(at)}")
        print(f"  its URLs are valid until {iso_time(at + config.token_ttl_s)}")
        return 0

    return _api_call(args, call)


def _scheduled(args: argparse.Namespace) -> int:
    async def call(client: MeetingBaasClient) -> int:
        if args.cancel:
            await client.cancel_scheduled(args.cancel)
            print(f"bot {args.cancel} cancelled")
            return 0
        for bot in await client.scheduled_bots():
            print(describe(bot))
        return 0

    return _api_call(args, call)


def _calendar_connect(args: argparse.Namespace) -> int:
    if not (args.oauth_client_secret and args.oauth_refresh_token):
        raise ValueError("--oauth-client-secret and --oauth-refresh-token are needed")
    oauth = {
        "oauth_client_id": args.oauth_client_id,
        "oauth_client_secret": args.oauth_client_secret,
        "oauth_refresh_token": args.oauth_refresh_token,
    } | ({"oauth_tenant_id": args.oauth_tenant_id} if args.oauth_tenant_id else {})

    async def call(client: MeetingBaasClient) -> int:
        calendar = await Calendars(client).connect(args.platform, oauth, args.raw_calendar_id)
        ident = calendar.get("calendar_id") or calendar.get("uuid")
        print(
            f"calendar {ident} connected ({calendar.get('account_email') or calendar.get('email')})"
        )
        return 0

    return _api_call(args, call)


def _calendar_list(args: argparse.Namespace) -> int:
    async def call(client: MeetingBaasClient) -> int:
        for c in await Calendars(client).list():
            ident = c.get("calendar_id") or c.get("uuid")
            who = c.get("account_email") or c.get("email") or ""
            print(
                f"{ident}  {c.get('calendar_platform') or c.get('name') or ''}  {who}  "
                f"{c.get('status') or ''}".rstrip()
            )
        return 0

    return _api_call(args, call)


def _calendar_events(args: argparse.Namespace) -> int:
    async def call(client: MeetingBaasClient) -> int:
        for e in await Calendars(client).events(args.calendar_id, after=time.time()):
            flags = ("cancelled " if e.cancelled else "") + ("bot " if e.bot_scheduled else "")
            print(f"{e.event_id}  {iso_time(e.start)}  {flags}{e.title}  {e.meeting_url or '-'}")
        return 0

    return _api_call(args, call)


def _calendar_schedule(args: argparse.Namespace) -> int:
    config = _config(args)

    async def call(client: MeetingBaasClient) -> int:
        calendars = Calendars(client)
        event = await calendars.event(args.calendar_id, args.event_id)
        if event.meeting_url is None:
            raise ValueError(f"event {event.event_id} has no meeting URL")
        urls = session_urls(config, args.split, joins_at=event.start)
        spec = _bot_spec(args, config, urls, event.meeting_url)
        await calendars.schedule(args.calendar_id, event, spec)
        print(f"session {urls.session_id}: a bot joins {event.title!r} at {iso_time(event.start)}")
        return 0

    return _api_call(args, call)


def _calendar_unschedule(args: argparse.Namespace) -> int:
    async def call(client: MeetingBaasClient) -> int:
        calendars = Calendars(client)
        await calendars.unschedule(
            args.calendar_id, await calendars.event(args.calendar_id, args.event_id)
        )
        print(f"event {args.event_id}: bot unscheduled")
        return 0

    return _api_call(args, call)


async def _meetingbaas_services(
    server: BridgeServer, args: argparse.Namespace, services: contextlib.AsyncExitStack
) -> None:
    """serve's --fetch-artifacts and --auto-join (on worker 0 only: one bot an event)."""
    config = server.config
    if config.fetch_artifacts is not None:
        fetcher = ArtifactFetcher(
            config.fetch_artifacts, config.artifact_max_bytes, config.artifact_queue_size
        )
        server.webhooks.on_final = fetcher.fetch
        services.push_async_callback(fetcher.close)
    if config.auto_join and config.worker_index == 0:
        client = await services.enter_async_context(_client(args))
        template = BotSpec(
            meeting_url="-",
            output_url="-",
            input_url="-",
            bot_name=config.bot_name or DEFAULT_BOT_NAME,
        )  # the meeting and the URLs are each event's
        ids = {c.strip() for c in config.auto_join.split(",") if c.strip()}
        auto = AutoJoin(Calendars(client), config, ids, template)
        server.webhooks.on_calendar = auto.notice
        auto.start()
        services.push_async_callback(auto.close)
        print(f"auto-joining the events of calendar {', '.join(sorted(ids))}", flush=True)
