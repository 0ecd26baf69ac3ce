"""The asyncio edge: the server and routing, sessions, playout, responder runner, control."""
