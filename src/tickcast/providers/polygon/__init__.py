"""The Polygon.io (Massive) stocks stream: wire messages, a pure parser, the I/O driver.

``messages.py`` types the wire, ``parse.py`` normalizes frames (pure), ``stream.py`` runs
the session (connect, auth, subscribe, stream) as a ``Provider``.
"""
