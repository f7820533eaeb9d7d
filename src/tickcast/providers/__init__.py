"""Upstream market-data providers: contracts here, one folder per provider."""
