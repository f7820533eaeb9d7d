"""File replay: play back a recording made by ``tickcast record`` (``format.py`` is the
file format, pure; ``stream.py`` paces it on the event loop)."""
