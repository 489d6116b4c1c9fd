"""The parts of an ingest that are not the index: its report, the input cut into batches, the
progress total it extrapolates, and the thread that writes embedded batches in order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from rag.corpus.records import ReadResult
from rag.types import Chunk, Paper

# progress(stage, advance, total): stage is "embed"; total (chunks) is an estimate that the calls refine.
Progress = Callable[[str, int, int], None]


class IngestReport(BaseModel):
    files: int = 0
    papers_read: int = 0
    unique_papers: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    sources_updated: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    repaired: int = 0
    orphans_removed: int = 0
    sanitized: int = 0  # papers read with control characters or escape sequences (stored without them)
    left_out: int = 0  # papers read that were not in the categories asked for (`--category`)
    problems: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    paper_vectors_added: int = 0  # papers of the index given a whole-abstract vector after the fact


def advance(progress: Progress | None, total: int) -> Callable[[int], None] | None:
    """The embedder's progress(n) as the index's progress("embed", n, total)."""
    if progress is None:
        return None
    report = progress
    return lambda n: report("embed", n, total)


def pieces_of(papers: Sequence[Paper] | Iterable[ReadResult], size: int) -> Iterator[ReadResult]:
    """The input as pieces of a corpus: a list of papers is cut into pieces of `size`."""
    if not isinstance(papers, Sequence):
        yield from papers
        return
    total = len(papers)
    for start in range(0, total, size):
        part = list(papers[start : start + size])
        yield ReadResult(papers=part, where=[p.source or "input" for p in part], done=(start + len(part)) / total)


def estimate_total(chunks: int, todo: int, papers_in: int, unique: int, done: float, limit: int | None) -> int:
    """The chunks this ingest will embed, extrapolated: papers still to read (from the share of the
    input read, or from `limit`) times the chunks per paper read so far."""
    if papers_in == 0 or todo == 0:
        return chunks
    left = (1.0 - done) / done * papers_in if done > 0 else 0.0
    if limit:
        left = min(left, max(0, limit - unique)) if done > 0 else max(0, limit - unique)
    return chunks + round(left * chunks / papers_in)


class BatchWriter:
    """Writes embedded batches in a thread of its own, in order, while the caller embeds the next one.

    `write(batch, chunks, vectors, places, report)` runs for each `put`, one at a time, in the order
    given: each batch keeps the commit order of the index (vectors -> catalog -> stale vectors), so a
    kill at any moment still leaves at worst orphan vectors. `call(fn)` runs `fn(report)` in the same
    order (updates that must follow the batches handed over before). At most one item waits while
    another is written; `committed` is the number of batches written so far. On leaving the block,
    the items handed over are written (also when the caller stops with an error or Ctrl-C: what was
    embedded is kept); a write's error is raised in the caller's thread.
    """

    def __init__(self, write: Callable[..., None], report: IngestReport):
        self.write = write
        self.report = report
        self.queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.put_count = 0
        self.committed = 0
        self.thread = threading.Thread(target=self._run, name="rag-index-writer", daemon=True)

    def __enter__(self) -> BatchWriter:
        self.thread.start()
        return self

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    item()
                except BaseException as exc:  # handed to the caller's thread
                    self.error = exc

    def put(
        self,
        batch: list[tuple[Paper, str | None]],
        chunks: list[Chunk],
        vectors: np.ndarray,
        places: list[str] | None = None,
        paper_vectors: np.ndarray | None = None,
    ) -> int:
        """Hand over one batch; its number (`committed` reaches it once it is written)."""
        self._raise()
        self.put_count += 1
        number = self.put_count

        def write() -> None:
            self.write(batch, chunks, vectors, places, self.report, paper_vectors)
            self.committed = number

        self.queue.put(write)
        return number

    def call(self, fn: Callable[[IngestReport], None]) -> int:
        """Run `fn(report)` after what was handed over before; its number (as `put`'s)."""
        self._raise()
        self.put_count += 1
        number = self.put_count

        def run() -> None:
            fn(self.report)
            self.committed = number

        self.queue.put(run)
        return number

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc_info: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if exc_info[0] is None:
            self._raise()


@dataclass
class Resolved:
    """What to do with one batch read: papers to embed (with the id each replaces) and their places;
    indexed papers read again (title -> id, sources, place); whether the limit was reached."""

    todo: list[tuple[Paper, str | None]] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    seen: dict[str, tuple[str, list[str], str]] = field(default_factory=dict)
    stop: bool = False


class InFlight:
    """Papers of this run handed to the writer but maybe not committed yet, by title (the catalog
    answers for the rest): a duplicate later in the input must find them, and no more than the
    batches in flight is held in memory."""

    def __init__(self) -> None:
        self.by_title: dict[str, tuple[int, str, list[str], str]] = {}  # title -> (batch, id, sources, place)

    def get(self, title_key: str) -> tuple[str, list[str], str] | None:
        entry = self.by_title.get(title_key)
        return entry[1:] if entry else None

    def forget_committed(self, committed: int) -> None:
        """Drop what batches up to `committed` hold (call it before asking the catalog: it has them)."""
        self.by_title = {key: entry for key, entry in self.by_title.items() if entry[0] > committed}
