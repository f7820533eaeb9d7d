"""tickcast: a real-time market-data gateway."""

__version__ = "0.1.0"
