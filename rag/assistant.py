"""The one public API: the CLI, the TUI and library users all go through `Assistant`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .corpus import dedupe, read_corpus
from .embeddings import Embedder
from .errors import CorpusError, EmptyQuestionError
from .index import Index, IndexStats, IngestReport, Progress
from .retrieve import Mode, Retriever
from .settings import Settings
from .types import Hit

MAX_QUESTION_CHARS = 2000


def clean_question(question: str) -> tuple[str, bool]:
    """The question stripped and cut to a sane length; the flag says whether it was cut."""
    text = " ".join((question or "").split())
    if not text:
        raise EmptyQuestionError("the question is empty; type a question about the papers")
    if len(text) > MAX_QUESTION_CHARS:
        return text[:MAX_QUESTION_CHARS], True
    return text, False


class Assistant:
    """Ingest corpora, search them, and (with a model) answer questions with citations."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None):
        self.settings = settings or Settings()
        self.embedder = embedder or Embedder(
            self.settings.embedding_model,
            batch_size=self.settings.embed_batch_size,
            n_threads=self.settings.n_threads,
            cache_dir=self.settings.models_dir / "embeddings",
        )
        self.index = Index(self.settings, self.embedder)
        self.retriever = Retriever(self.index, self.settings)

    # --- ingest ---------------------------------------------------------------------------
    def ingest(
        self, paths: Iterable[Path | str] | None = None, rebuild: bool = False, progress: Progress | None = None
    ) -> IngestReport:
        """Index files or folders (None: the bundled corpus). Unchanged papers are not re-embedded."""
        read = read_corpus(list(paths) if paths is not None else None)
        papers = dedupe(read.papers)
        if not papers:
            detail = f": {read.problems[0]}" if read.problems else ""
            raise CorpusError(f"nothing could be ingested ({len(read.problems)} problems){detail}")
        if rebuild:
            self.index.wipe()
        report = self.index.ingest(papers, progress=progress)
        report.files, report.papers_read, report.problems = read.files, len(read.papers), read.problems
        return report

    def ensure_index(self, progress: Progress | None = None) -> IngestReport | None:
        """Build the index of the bundled corpus on first use."""
        if self.index.exists():
            return None
        return self.ingest(progress=progress)

    # --- search ---------------------------------------------------------------------------
    def search(
        self, question: str, k: int = 10, *, mode: Mode = "hybrid", source: str | None = None, year: int | None = None
    ) -> list[Hit]:
        """The k most relevant passages, at most one per paper."""
        text, _ = clean_question(question)
        self.index.open_for_search()
        return self.retriever.search(text, k, mode=mode, source=source, year=year)

    def stats(self) -> IndexStats:
        return self.index.stats()

    def close(self) -> None:
        self.index.close()
