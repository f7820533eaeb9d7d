"""One thin module per front in MISSION.md: paths, session, topic mapping."""
