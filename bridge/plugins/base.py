"""Kept so responders written against `bridge.plugins.base` still import: the responder API
lives in `bridge.responder`."""

from bridge.responder import Event, NoOptions, Responder, SessionHandle, SessionInfo

__all__ = ["Event", "NoOptions", "Responder", "SessionHandle", "SessionInfo"]
