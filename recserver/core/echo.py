"""Echoing client-supplied text in error messages without letting it grow the message.

A status message travels to the client in the ``grpc-message`` trailer, and gRPC refuses
metadata past its limit (8 KiB by default): an error that echoed a 10,000-character ``surface``
reached the client as RESOURCE_EXHAUSTED "Stream removed" instead of INVALID_ARGUMENT with what
to fix. So every value taken from a request goes into a message through :func:`shown` (cut, with
its length), and the transport caps each whole message with :func:`bounded_message`, a last line
of defence for any echo that was missed.

Sizes are counted the way gRPC sends the message: UTF-8, then percent-encoded, where every byte
outside printable ASCII (and ``%`` itself) becomes three bytes (``%E2``): one emoji is 12 bytes
on the wire, so a limit in characters alone would not bound the trailer.
"""

from __future__ import annotations

#: Characters of a client value shown at most. Long enough to recognise an id (most are far
#: shorter), short enough that a message quoting several values (``UpdateItems`` reports up to
#: three items, each with an id and a category) stays a few hundred characters: at 12 wire
#: bytes for the widest character, 64 cost at most 768 bytes.
SHOWN_CHARS = 64

#: Wire bytes of one whole status message at most. A quarter of gRPC's 8 KiB default metadata
#: limit, so the other trailers (status, details, custom metadata) never push the sum over it,
#: and still twice the longest message the server writes on purpose (about 800 characters:
#: three bad items quoted whole, or a long list of configured surfaces).
MESSAGE_WIRE_BYTES = 2_048

_ELLIPSIS = "\u2026"  # one character for "cut here", spelled as an escape for the linter
#: Bytes gRPC sends as themselves in grpc-message: space and visible ASCII except '%'
#: (the spec's Percent-Byte-Unencoded: %x20-%x24 / %x26-%x7E).
_PLAIN_BYTES = bytes(b for b in range(0x20, 0x7F) if b != 0x25)
#: Escapes that repr also uses for these characters (the rest get \x, \u or \U).
_NAMED_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    # Like repr, always in single quotes: printable characters as themselves, the others
    # escaped, so a lone surrogate or a control character can never reach the wire raw.
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shown(value: str, limit: int = SHOWN_CHARS) -> str:
    """``value`` quoted for an error message, at most about ``limit`` characters of it.

    A value whose quoted form fits is returned whole, like ``repr`` (single quotes,
    non-printable characters escaped): ``'nope'``. A longer one is cut to ``limit`` characters
    (never inside an escape; always whole code points, so the result is valid UTF-8) and says
    how long it was: ``'aaaa…' (10,000 characters)``. The length is in characters, as the
    server's own limits (``ids are at most 256``) are.
    """
    pieces: list[str] = []
    used = 0
    taken = 0
    # Each character shows as at least one, so no more than ``limit`` of them can fit: the
    # cost of a call does not grow with the value.
    for char in value[: max(limit, 0) + 1]:
        piece = _escaped(char)
        if used + len(piece) > limit:
            break
        pieces.append(piece)
        used += len(piece)
        taken += 1
    body = "".join(pieces)
    if taken == len(value):
        return f"'{body}'"
    return f"'{body}{_ELLIPSIS}' ({len(value):,} characters)"


def wire_size(text: str) -> int:
    """Bytes ``text`` takes as a ``grpc-message`` trailer (UTF-8, then percent-encoded)."""
    data = text.encode("utf-8", "backslashreplace")
    escaped = len(data.translate(None, _PLAIN_BYTES))  # the bytes that are not sent plain
    return len(data) + 2 * escaped


def bounded_message(text: str, limit: int = MESSAGE_WIRE_BYTES) -> str:
    """``text`` as a status message of at most ``limit`` wire bytes (see :func:`wire_size`).

    Returned unchanged when it fits (the usual case: messages that echo client values already
    cut them with :func:`shown`). Otherwise the head that fits is kept and a note says the
    message was cut and how long it was, so a client still reads what went wrong first. Lone
    surrogates, which UTF-8 cannot carry, are written as backslash escapes. (A ``limit`` below
    the note's own size, about 50 bytes, still gets the whole note.)
    """
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if wire_size(text) <= limit:
        return text
    note = f" {_ELLIPSIS} [message cut: it was {len(text):,} characters]"
    room = max(limit - wire_size(note), 0)
    # The longest head that fits: every character costs at least one byte, so it is at most
    # ``room`` characters long; the cost grows with the length, so bisect over it.
    low, high = 0, min(room, len(text))
    while low < high:
        mid = (low + high + 1) // 2
        if wire_size(text[:mid]) <= room:
            low = mid
        else:
            high = mid - 1
    return text[:low] + note
