"""Socket.IO for Front 5: the hub's event codec (``codec.py``) and the session that
turns a client's events into the core's commands (``session.py``), both sans-I/O.
Engine.IO and Socket.IO's own packets are python-socketio's (``fronts/socketio.py``)."""
