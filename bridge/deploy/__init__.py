"""Deployment: configurations for the load balancer or TLS proxy in front of the bridges."""
