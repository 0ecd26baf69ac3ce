"""Find responders by name (entry points, group `speakbridge.responders`) or `module:Class`."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from pydantic import ValidationError

from bridge.responder import Responder

GROUP = "speakbridge.responders"


class ResponderError(ValueError):
    """A responder that cannot be found, loaded or configured; the message says which."""


def available() -> list[str]:
    """Names of the responders installed as entry points."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load(spec: str) -> type[Responder]:
    """The Responder class named by an entry-point name or a `module:Class` path."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ResponderError(f"cannot load responder {spec!r}: {exc}") from None
    else:
        matches = entry_points(group=GROUP, name=spec)
        if not matches:
            raise ResponderError(
                f"no responder named {spec!r}; installed: {', '.join(available())}"
            )
        cls = next(iter(matches)).load()
    if not (isinstance(cls, type) and issubclass(cls, Responder)):
        raise ResponderError(f"{spec!r} is not a subclass of bridge.responder.Responder")
    return cls


def parse_options(cls: type[Responder], pairs: list[str], name: str | None = None) -> object:
    """Validate `key=value` strings against the responder's Options model.

    A key the model has no field for is refused even if the model itself would take it
    (a user's model without extra="forbid"): a typo must not pass silently. Errors name
    the responder as the user did (`name`, e.g. "echo") and list the keys it takes.
    """
    who = name or cls.__name__
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ResponderError(f"option {pair!r} of responder {who!r} is not key=value")
        raw[key.strip()] = value
    keys = option_keys(cls)
    unknown = [key for key in raw if key not in keys]
    if unknown:
        raise ResponderError(
            f"responder {who!r} has no option {', '.join(map(repr, unknown))}; {_takes(keys)}"
        )
    try:
        return cls.Options.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise ResponderError(
            f"bad options for responder {who!r}: {problems}; {_takes(keys)}"
        ) from None


def option_keys(cls: type[Responder]) -> list[str]:
    """The keys `-o` takes for this responder: its Options model's fields and their aliases."""
    keys: list[str] = []
    for field_name, info in cls.Options.model_fields.items():
        keys += [field_name] + ([info.alias] if info.alias and info.alias != field_name else [])
    return keys


def _takes(keys: list[str]) -> str:
    return f"it takes {', '.join(keys)}" if keys else "it takes no options"
