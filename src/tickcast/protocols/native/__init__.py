"""The native JSON protocol of the market feed (Front 1, ``/ws/market/feed``)."""
