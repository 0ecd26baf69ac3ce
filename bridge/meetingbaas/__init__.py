"""The Meeting BaaS REST API (v1 and v2) and launching bots that stream to the bridge."""
