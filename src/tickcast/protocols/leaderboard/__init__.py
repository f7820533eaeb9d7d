"""The leaderboard's wire: its JSON messages (``codec.py``)."""
