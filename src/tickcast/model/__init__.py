"""Normalized types shared by every layer. Pure: imports nothing beyond msgspec."""
