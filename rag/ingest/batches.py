"""The parts of an ingest around the index: its report, the input cut into batches, what to do with
each paper of a batch (new, replacing, already indexed, read twice), the progress total it
extrapolates, and the thread that writes embedded batches in order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from rag.corpus.records import ReadResult
from rag.store.catalog import Catalog
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


def resolve(
    batch: list[tuple[Paper, None, str]],
    catalog: Catalog,
    in_flight: InFlight,
    committed: int,
    report: IngestReport,
    limit: int | None,
) -> Resolved:
    """Decide, for each paper of a batch read, whether it is new, replaces a paper of the same title,
    is already indexed (maybe with a new source) or was read before in this run (then it is not
    one more distinct paper; a later abstract under the same title replaces the earlier one)."""
    in_flight.forget_committed(committed)
    known = catalog.known_titles([paper.title_key for paper, _, _ in batch])
    state: dict[str, tuple[str, list[str], str | None]] = {}  # title -> (id, sources, place in this run)
    todo: dict[str, tuple[Paper, str | None, str]] = {}  # title -> (paper to embed, the id it replaces, place)
    seen: dict[str, tuple[str, list[str], str]] = {}  # title -> (id, sources, place) of papers not re-embedded
    resolved = Resolved()
    for paper, _, place in batch:
        key = paper.title_key
        current = state.get(key) or in_flight.get(key) or known.get(key)
        if current is None:
            todo[key] = (paper, None, place)
            state[key] = (paper.paper_id, paper.sources, place)
            report.added += 1
        else:
            pid, sources, run_place = current
            merged = sources + [s for s in paper.sources if s not in sources]
            if pid == paper.paper_id:
                first_place = run_place or place
                if key in todo:
                    todo[key][0].sources = merged
                elif run_place is None or merged != sources:
                    seen[key] = (pid, merged, first_place)
                state[key] = (pid, merged, first_place)
                if run_place is not None:
                    continue  # a copy of a paper this run already took
                report.unchanged += 1
            else:
                replacement = paper.model_copy(update={"sources": merged})
                state[key] = (replacement.paper_id, merged, place)
                seen.pop(key, None)
                if run_place is not None:
                    report.problems.append(f"{run_place}: replaced by {place} (the same title with another abstract)")
                    # An earlier version in this batch was never written: it replaces what that one replaced.
                    todo[key] = (replacement, todo[key][1] if key in todo else pid, place)
                    continue
                todo[key] = (replacement, pid, place)
                report.replaced += 1
        report.unique_papers += 1
        if limit is not None and report.unique_papers >= limit:
            resolved.stop = True
            break
    resolved.todo = [(paper, old) for paper, old, _ in todo.values()]
    resolved.places = [place for _, _, place in todo.values()]
    resolved.seen = seen
    return resolved
