"""Vendor stream emulators: ``tickcast emulate alpaca|polygon``.

Each serves a vendor's market-data WebSocket protocol from the built-in simulator, for
offline development and CI of apps written against the vendor's SDK, and for testing
tickcast's own adapters. ``base.py`` is the shared machinery (market, connection limits,
scripted faults, the control endpoint); each vendor's wire lives in its own module.
"""
