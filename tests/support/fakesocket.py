"""A frame socket that records every write and takes everything (no network)."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class RecordingSocket:
    raw = True
    writable = True

    def __init__(self) -> None:
        self.on_writable: Callable[[], None] | None = None
        self.written: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def write_frames(self, data: bytes) -> bool:
        self.written.append(data)
        return self.writable

    def send_texts(self, payloads: Sequence[bytes]) -> None:
        raise AssertionError("a raw socket gets frames")

    def send_bytes(self, payload: bytes) -> None:
        raise AssertionError("a raw socket gets frames")

    def peer_limited(self) -> bool | None:
        return False

    def close(self, code: int, reason: str, *, on_abort: Callable[[], None] | None = None) -> None:
        self.closed = (code, reason)

    def payloads(self) -> list[bytes]:
        """Every frame's payload, in order (server frames: unmasked)."""
        out: list[bytes] = []
        for data in self.written:
            i = 0
            while i < len(data):
                length, start = data[i + 1] & 0x7F, i + 2
                if length == 126:
                    length, start = int.from_bytes(data[i + 2 : i + 4], "big"), i + 4
                elif length == 127:
                    length, start = int.from_bytes(data[i + 2 : i + 10], "big"), i + 10
                out.append(data[start : start + length])
                i = start + length
        return out
