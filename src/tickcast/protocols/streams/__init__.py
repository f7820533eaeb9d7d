"""Front 4's streams: one server-pushed stream per connection (``session.py``)."""
