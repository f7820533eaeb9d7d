"""Sans-I/O client protocols: bytes and text in, commands and frames out."""
