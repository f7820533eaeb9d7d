"""The ``tickcast`` command."""
