"""One thin module per front (docs/architecture.md): paths, session, topic mapping."""
