"""The Alpaca market data stream v2 (stocks, the FAKEPACA test stream, crypto).

``messages.py`` types the wire, ``parse.py`` normalizes it (pure), ``stream.py`` is the
adapter (the I/O): connect, authenticate, subscribe the whole universe, deliver events.
"""
