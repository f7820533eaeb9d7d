"""The monitoring sockets' wire (``codec.py``)."""
