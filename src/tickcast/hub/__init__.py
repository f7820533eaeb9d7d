"""The hub: topics to subscribers, encode once, per-connection outboxes, history."""
