"""The `speakbridge` command line: serve, simulate, responders."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from bridge import __version__
from bridge.config import BridgeConfig
from bridge.plugins import registry
from bridge.plugins.base import Responder, SessionHandle
from bridge.server import BridgeServer
from bridge.session import ResponderFactory
from bridge.simulator import SimulatorOptions, simulate

ENV_PREFIX = "SPEAKBRIDGE_"
log = logging.getLogger("bridge")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `speakbridge` and `python -m bridge`; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.run(args)
    except (registry.ResponderError, ValueError, OSError) as exc:
        print(f"speakbridge: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speakbridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"speakbridge {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get(f"{ENV_PREFIX}LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the bridge server")
    _add_config_flags(serve)
    serve.add_argument(
        "--responder",
        default=os.environ.get(f"{ENV_PREFIX}RESPONDER", "echo"),
        help="entry-point name or module:Class (env SPEAKBRIDGE_RESPONDER)",
    )
    serve.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a responder option; repeat for several",
    )
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
    sim.add_argument("--rate", type=int, default=24000, choices=[16000, 24000])
    sim.add_argument("--chunk-ms", type=int, default=20)
    sim.add_argument("--burst-chunks", type=int, default=10)
    sim.add_argument("--gap-s", type=float, default=2.0, help="silence after each recording")
    sim.add_argument("--listen-s", type=float, default=2.0, help="listening time after the last")
    sim.add_argument("--out", help="write what came back (on the bot's playback timeline) to a WAV")
    sim.set_defaults(run=_simulate)

    listing = commands.add_parser("responders", help="list the installed responders")
    listing.set_defaults(run=lambda _: print("\n".join(registry.available())) or 0)
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    for name, info in BridgeConfig.model_fields.items():
        flag, env = "--" + name.replace("_", "-"), ENV_PREFIX + name.upper()
        default = os.environ.get(env, info.default)
        helptext = f"{info.description or ''} (env {env}, default {info.default})".strip()
        if isinstance(info.default, bool):
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=str(default).lower() in ("1", "true", "yes", "on"),
                help=helptext,
            )
        else:
            kind = type(info.default) if info.default is not None else str
            parser.add_argument(
                flag, type=kind, default=None if default is None else kind(default), help=helptext
            )


def _config(args: argparse.Namespace) -> BridgeConfig:
    try:
        return BridgeConfig(**{name: getattr(args, name) for name in BridgeConfig.model_fields})
    except ValidationError as exc:
        problems = "; ".join(f"--{e['loc'][0]}: {e['msg']}".replace("_", "-") for e in exc.errors())
        raise ValueError(problems) from None


def responder_factory(spec: str, options: list[str]) -> ResponderFactory:
    """Load and validate a responder once; the factory builds one per session."""
    cls = registry.load(spec)
    validated = registry.parse_options(cls, options)

    def make(session: SessionHandle) -> Responder:
        return cls(validated, session)  # type: ignore[arg-type]

    return make


def _serve(args: argparse.Namespace) -> int:
    config = _config(args)
    factory = responder_factory(args.responder, args.option)
    return asyncio.run(_serve_until_signalled(config, factory))


async def _serve_until_signalled(config: BridgeConfig, factory: ResponderFactory) -> int:
    server = BridgeServer(config, factory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(server.banner(), flush=True)
    await stop.wait()
    log.info("shutting down: ending %d sessions", len(server.sessions.sessions))
    await server.close()
    return 0


def _simulate(args: argparse.Namespace) -> int:
    if len(args.urls) > 2:
        raise ValueError("give one URL (both ways) or two (output, then input)")
    opts = SimulatorOptions(
        sample_rate=args.rate,
        chunk_ms=args.chunk_ms,
        burst_chunks=args.burst_chunks,
        gap_s=args.gap_s,
        listen_s=args.listen_s,
    )
    report = asyncio.run(simulate(args.urls, args.wav, opts, args.out))
    print(report)
    return 0
