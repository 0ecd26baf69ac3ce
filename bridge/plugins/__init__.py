"""Responder plugins: the interface, the registry and the built-in responders."""
