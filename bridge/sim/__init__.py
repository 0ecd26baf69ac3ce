"""A simulated Meeting BaaS bot, and a client for the control channel."""
