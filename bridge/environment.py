"""SPEAKBRIDGE_* environment variables, read and validated before any command runs.

A variable named after a BridgeConfig field (SPEAKBRIDGE_PORT for `port`) sets that field's
default; a bad value is one line naming the variable, never a traceback, whatever the
command (even `--help`). An empty value counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from bridge.config import BridgeConfig
from bridge.plugins import registry

PREFIX = "SPEAKBRIDGE_"
# Variables of the command line itself (not settings of the server), with what they take.
CHOICES = {
    "LOG_LEVEL": ("debug", "info", "warning", "error"),
    "LOG_FORMAT": ("text", "json"),
}


def env_name(field: str) -> str:
    """The variable that sets a BridgeConfig field."""
    return PREFIX + field.upper()


def is_internal(info: FieldInfo) -> bool:
    """A field no user sets (the supervisor's worker index): hidden from help and docs."""
    extra = info.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("internal"))


def config_defaults(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The BridgeConfig fields set in environ, validated; ValueError names every bad one."""
    values: dict[str, Any] = {}
    problems = []
    for name, info in BridgeConfig.model_fields.items():
        raw = environ.get(env_name(name), "")
        if raw == "" or is_internal(info):
            continue
        try:
            values[name] = _parse(info, raw)
        except ValidationError as exc:
            problems.append(f"{env_name(name)}={raw!r}: {exc.errors()[0]['msg']}")
    for suffix, choices in CHOICES.items():
        raw = environ.get(PREFIX + suffix, "")
        if raw and raw not in choices:
            problems.append(f"{PREFIX}{suffix}={raw!r}: should be one of {', '.join(choices)}")
    named = [n for n in environ.get(PREFIX + "RESPONDER", "").split(",") if n and ":" not in n]
    unknown = [name for name in named if name not in registry.available()]
    if unknown:  # a module:Class is loaded (and checked) when the server starts
        problems.append(
            f"{PREFIX}RESPONDER={environ[PREFIX + 'RESPONDER']!r}: no responder named "
            f"{', '.join(unknown)}; installed: {', '.join(registry.available())}"
        )
    url = environ.get(PREFIX + "URL", "")
    if url and not url.startswith(("ws://", "wss://")):
        problems.append(f"{PREFIX}URL={url!r}: should be a ws:// or wss:// URL")
    if problems:
        raise ValueError("; ".join(problems))
    return values


def _parse(info: FieldInfo, raw: str) -> Any:
    """A value from its text, or from the number it spells (a Literal of numbers, such as
    the rate, takes no text)."""
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[info.annotation, info])
    try:
        return adapter.validate_strings(raw)
    except ValidationError:
        number = _number(raw)
        if number is None:
            raise
        return adapter.validate_python(number)


def _number(raw: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return None
