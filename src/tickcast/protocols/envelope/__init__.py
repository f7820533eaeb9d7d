"""Front 2's realtime envelope: ``{"type", "data", "timestamp"}`` both ways."""
