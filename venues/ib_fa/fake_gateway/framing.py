"""TWS socket framing: length-prefixed NUL-separated fields and the `API\\0` handshake.

The server side of ib_async's `client.py`/`connection.py`: the client opens with `API\\0`
followed by one length-prefixed version range ("v157..178", optionally with connect options);
everything after that, in both directions, is a 4-byte big-endian length and NUL-terminated fields.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

API_PREFIX = b"API\0"
SERVER_VERSION = 178
_VERSION_RANGE = re.compile(r"v(\d+)(?:\.\.(\d+))?")


class ProtocolError(Exception):
    pass


def encode_fields(fields: Iterable[object]) -> bytes:
    payload = b"".join(str(f).encode("ascii", errors="backslashreplace") + b"\0" for f in fields)
    return struct.pack(">I", len(payload)) + payload


def decode_payload(payload: bytes) -> list[str]:
    fields = payload.decode("ascii", errors="backslashreplace").split("\0")
    # every field is NUL-terminated, so a well-formed payload splits into a trailing empty string
    if fields and fields[-1] == "":
        fields.pop()
    return fields


def handshake_reply(server_version: int, connection_time: str) -> bytes:
    """Exactly two fields: ib_async recognises the reply by its field count."""
    return encode_fields([server_version, connection_time])


@dataclass(frozen=True)
class VersionRange:
    min_version: int
    max_version: int
    options: str = ""

    def negotiate(self, server_version: int = SERVER_VERSION) -> int | None:
        """The fake speaks exactly one version, so it either fits the client's range or nothing does."""
        if self.min_version <= server_version <= self.max_version:
            return server_version
        return None


def parse_version_range(text: str) -> VersionRange:
    head, _, options = text.partition(" ")
    m = _VERSION_RANGE.fullmatch(head.strip())
    if not m:
        raise ProtocolError(f"bad version range {text!r}")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    return VersionRange(lo, hi, options.strip())


class FrameReader:
    """Turns arbitrary TCP chunks into the handshake and then into field lists.

    TCP gives no message boundaries, so bytes are buffered until a whole frame is present.
    """

    def __init__(self, expect_handshake: bool = True) -> None:
        self._buf = bytearray()
        self._awaiting_prefix = expect_handshake
        self._awaiting_versions = expect_handshake
        self.version_range: VersionRange | None = None

    def feed(self, data: bytes) -> list[list[str]]:
        self._buf += data
        out: list[list[str]] = []
        if self._awaiting_prefix:
            if len(self._buf) < len(API_PREFIX):
                if not API_PREFIX.startswith(bytes(self._buf)):
                    raise ProtocolError("client did not start with API\\0")
                return out
            if bytes(self._buf[: len(API_PREFIX)]) != API_PREFIX:
                raise ProtocolError("client did not start with API\\0")
            del self._buf[: len(API_PREFIX)]
            self._awaiting_prefix = False
        while True:
            frame = self._next_frame()
            if frame is None:
                return out
            if self._awaiting_versions:
                self.version_range = parse_version_range(frame.decode("ascii", errors="replace"))
                self._awaiting_versions = False
                continue
            out.append(decode_payload(frame))

    @property
    def handshake_done(self) -> bool:
        return not self._awaiting_versions

    def _next_frame(self) -> bytes | None:
        if len(self._buf) < 4:
            return None
        (length,) = struct.unpack(">I", self._buf[:4])
        if length > 16 * 1024 * 1024:
            raise ProtocolError(f"frame of {length} bytes is not plausible")
        if len(self._buf) < 4 + length:
            return None
        frame = bytes(self._buf[4 : 4 + length])
        del self._buf[: 4 + length]
        return frame
