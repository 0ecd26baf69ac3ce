"""The bot's wire protocol, sans-I/O: routes, messages, close codes, fast path, URL signing."""
