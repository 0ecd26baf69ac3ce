"""speakbridge: a realtime audio bridge for Meeting BaaS speaking bots."""

__version__ = "0.1.0"
