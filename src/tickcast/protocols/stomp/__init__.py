"""STOMP 1.2 for Front 3: frames (``frames.py``), the session (``session.py``) and the
hub's MESSAGE codec (``codec.py``), all sans-I/O."""
