"""Server-sent events: the one line reader for every stream this program reads (a model server's
chat completions, `rag serve`'s answer events).

Both readers hold at most one line (`MAX_LINE_CHARS`) or one event (`MAX_EVENT_CHARS`) in memory: a
server that sends `data:` lines without ever ending an event, or a line without an end, is an error
(`TooLarge`) rather than a process that grows until the machine swaps (3 GB in a minute before).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator

MAX_LINE_CHARS = 1 << 20  # one line; a chat-completion chunk or an answer event is a few kB
MAX_EVENT_CHARS = 4 << 20  # one event's data (`rag serve`'s last event carries the whole answer)
_LINE_END = re.compile(r"\r\n|\r|\n")


class TooLarge(ValueError):
    """A line or an event longer than the reader allows."""


def iter_lines(chunks: Iterable[bytes], max_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of a byte stream (\\n, \\r\\n or \\r ends a line), decoded as UTF-8; a line longer than
    `max_chars` is `TooLarge`, found before it is whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        # A \r at the end may be the first half of \r\n: keep it for the next chunk.
        cut = len(pending) - 1 if pending.endswith("\r") else len(pending)
        *lines, rest = _LINE_END.split(pending[:cut])
        pending = rest + pending[cut:]
        if len(pending) > max_chars:
            raise TooLarge(f"a line longer than {max_chars:,} characters")
        yield from lines
    pending += decoder.decode(b"", final=True)
    if pending.rstrip("\r"):
        yield from _LINE_END.split(pending.rstrip("\r"))


def iter_sse_data(lines: Iterable[str], max_chars: int = MAX_EVENT_CHARS) -> Iterator[str]:
    """The `data` of each server-sent event (multi-line data joined by newlines).

    Comments (`: ping`) and the other fields (`event`, `id`, `retry`) are skipped; a blank line ends
    an event; an event cut off by the end of the stream is still delivered. An event whose data
    grows past `max_chars` is `TooLarge`.
    """
    data: list[str] = []
    size = 0
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data, size = [], 0
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
            size += len(data[-1]) + 1
            if size > max_chars:
                raise TooLarge(f"an event longer than {max_chars:,} characters")
    if data:
        yield "\n".join(data)
