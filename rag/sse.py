"""Server-sent events: the one line reader for every stream this program reads (a model server's
chat completions, `rag serve`'s answer events)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data` of each server-sent event (multi-line data joined by newlines).

    Comments (`: ping`) and the other fields (`event`, `id`, `retry`) are skipped; a blank line ends
    an event; an event cut off by the end of the stream is still delivered.
    """
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)
