"""Metrics, health and structured logging."""
