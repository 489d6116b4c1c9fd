"""The one public API: the CLI, the TUI and library users all go through `Assistant`."""

from __future__ import annotations

import functools
import sqlite3
import time
import threading
from collections.abc import Callable, Generator as Pipeline, Iterable, Sequence
from pathlib import Path

from .answering import AnswerRequest, AnswerStream, generate_answer
from .corpus import dedupe, read_corpus
from .embeddings import Embedder
from .errors import CorpusError, EmptyQuestionError, GenerationError, IndexCorruptError
from .followups import standalone
from .index import Index, IndexStats, IngestReport, Progress
from .retrieve import Mode, Retriever
from .settings import Settings, remote_model
from .llm import Generator
from .models import ModelRegistry
from .models import Progress as ModelProgress
from .passages import build_passages, relevant
from .prompts import Template, load_prompts
from .types import Answer, Hit, Paper, Timings

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

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
    ):
        self.settings = settings or Settings.load()
        self._generator = generator
        self._prompts: dict[str, Template] | None = None
        self.embedder = embedder or self._make_embedder()
        self.index = Index(self.settings, self.embedder)
        self.retriever = Retriever(self.index, self.settings)

    def _make_embedder(self) -> Embedder:
        remote = remote_model(self.settings.embedding_model)
        if remote is not None:
            from .remote import OpenAIEmbedder

            return OpenAIEmbedder.from_settings(remote, self.settings)  # type: ignore[return-value]
        return Embedder(
            self.settings.embedding_model,
            batch_size=self.settings.embed_batch_size,
            n_threads=self.settings.n_threads,
            cache_dir=self.settings.models_dir / "embeddings",
        )

    # --- ingest ---------------------------------------------------------------------------
    def ingest(
        self, paths: Iterable[Path | str] | None = None, rebuild: bool = False, progress: Progress | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> IngestReport:
        """Index files or folders (None: the bundled corpus). Unchanged papers are not re-embedded.

        `rebuild` embeds everything into a new index that replaces the current one once complete;
        with no paths it re-embeds the papers already indexed (e.g. after changing the embedding model).

        If another process is ingesting into the same data dir, waits for it (`on_wait` is told why).
        """
        if paths is None and rebuild and self.index.catalog_path.exists() and (indexed := self._indexed_papers()):
            report = self.index.ingest(indexed, progress=progress, rebuild=True, on_wait=on_wait)
            report.papers_read = len(indexed)
            return report
        read = read_corpus(list(paths) if paths is not None else None)
        papers = dedupe(read.papers)
        if not papers:
            detail = f": {read.problems[0]}" if read.problems else ""
            raise CorpusError(f"nothing could be ingested ({len(read.problems)} problems){detail}")
        report = self.index.ingest(papers, progress=progress, rebuild=rebuild, on_wait=on_wait)
        report.files, report.papers_read = read.files, len(read.papers)
        report.problems = read.problems + report.problems
        return report

    def _indexed_papers(self) -> list[Paper]:
        """The papers in the index, to embed anew on `rebuild` without paths (whatever corpus they came from)."""
        try:
            return self.index.catalog.all_papers()
        except (IndexCorruptError, sqlite3.DatabaseError) as exc:
            raise IndexCorruptError(
                f"the index catalog cannot be read ({' '.join(str(exc).split())[:120]}), so its papers cannot be "
                "re-embedded; rebuild from your corpus files: `rag ingest --rebuild FILE...` (the current index "
                "stays until then)"
            ) from exc

    def ensure_index(
        self, progress: Progress | None = None, on_wait: Callable[[str], None] | None = None
    ) -> IngestReport | None:
        """Build the index of the bundled corpus on first use."""
        if self.index.exists():
            return None
        return self.ingest(progress=progress, on_wait=on_wait)

    # --- search ---------------------------------------------------------------------------
    def search(
        self, question: str, k: int = 10, *, mode: Mode = "hybrid", source: str | None = None, year: int | None = None
    ) -> list[Hit]:
        """The k most relevant passages, at most one per paper."""
        text, _ = clean_question(question)
        self.index.open_for_search()
        return self.retriever.search(text, k, mode=mode, source=source, year=year)

    # --- answers --------------------------------------------------------------------------
    @property
    def prompts(self) -> dict[str, Template]:
        if self._prompts is None:
            self._prompts = load_prompts(self.settings.prompts_dir)
        return self._prompts

    @functools.cached_property
    def models(self) -> ModelRegistry:
        """The model catalogue (models.txt, read once)."""
        return ModelRegistry(self.settings)

    def load_generator(self, progress: ModelProgress | None = None) -> Generator:
        """The language model (assembled from its packages and verified on first use), loaded once;
        for `openai:NAME`, a client of the server at `base_url`, checked to answer."""
        if self._generator is None and (remote := remote_model(self.settings.model)) is not None:
            from .remote import OpenAIGenerator

            client = OpenAIGenerator.from_settings(remote, self.settings)
            try:
                client.check()  # a server that is down fails here, before the first question
            except Exception:
                client.close()
                raise
            self._generator = client
        if self._generator is None:
            from .llm import LlamaCppGenerator

            resolved = self.models.resolve(self.settings.model, progress)
            generator = LlamaCppGenerator(
                resolved.path, name=resolved.name, n_ctx=resolved.n_ctx, n_threads=self.settings.n_threads,
                chat_format=resolved.chat_format,
            )
            generator.llm  # load now, so the first question does not pay for it
            self._generator = generator
        return self._generator

    @property
    def model_loaded(self) -> bool:
        return self._generator is not None

    @property
    def model_name(self) -> str:
        """The loaded model's name, else the configured one (default: the first entry of models.txt)."""
        if self._generator is not None:
            return self._generator.name
        return self.settings.model or self.models.default.name

    def set_model(self, name: str | None, progress: ModelProgress | None = None) -> Generator:
        """Switch to another model (a catalogue name, a .gguf path or openai:NAME) and load it; on failure keep the old one."""
        previous, previous_model = self._generator, self.settings.model
        self.settings.model, self._generator = name, None
        try:
            return self.load_generator(progress)
        except Exception:
            self.settings.model, self._generator = previous_model, previous
            raise

    def get_papers(self, paper_ids: Iterable[str]) -> dict[str, Paper]:
        """Full records (abstract, sources, ...) of indexed papers by id."""
        return self.index.catalog.get_papers(paper_ids)

    def stream(self, question: str, history: Sequence[Answer] | None = None) -> AnswerStream:
        """Answer `question`: iterate for verified text pieces; `.answer` holds the final `Answer`."""
        earlier = list(history or [])
        return AnswerStream(lambda cancel: self._answer(question, earlier, cancel))

    def ask(self, question: str, history: Sequence[Answer] | None = None) -> Answer:
        """Answer `question` (a follow-up if `history` holds earlier answers) with verified citations."""
        stream = self.stream(question, history)
        for _ in stream:
            pass
        if stream.answer is None:
            raise GenerationError("the answer was cancelled")
        return stream.answer

    def _answer(self, question: str, history: list[Answer], cancel: threading.Event) -> Pipeline[str, None, Answer | None]:
        text, truncated = clean_question(question)
        request = AnswerRequest(text, text)
        if truncated:
            request.notices.append(f"the question was cut to its first {MAX_QUESTION_CHARS} characters")
        prompts = self.prompts  # fail early on a broken prompt file
        self.index.open_for_search()
        catalog = self.index.catalog
        topic_ids = [c.paper_id for a in history for c in a.citations]
        resolved = standalone(text, history, catalog.get_papers(topic_ids) if topic_ids else {})
        request.standalone = resolved.text
        hits = self.retriever.search(resolved.text, self.settings.candidates_for_answer)
        if resolved.topic_id is not None:
            hits = self.retriever.prefer(hits, resolved.topic_id, text)
        request.timings.retrieve_s = time.perf_counter() - request.started
        if resolved.topic_id is None and not relevant(resolved.text, hits, self.settings):
            best = max((h.dense_score or 0.0 for h in hits), default=0.0)
            answer = request.refusal(
                f"nothing relevant was retrieved (best similarity {best:.2f}, {self.settings.min_relevance:.2f} needed)")
            yield answer.text
            return answer
        generator = self.load_generator()
        # Sentences are chosen by the question's own words: a follow-up's substituted paper name would
        # favour the sentences that repeat the title over the ones that answer.
        focus = text if resolved.topic_id is not None else resolved.text
        passages = build_passages(focus, hits, catalog, generator, self.settings)
        return (yield from generate_answer(request, passages, generator, prompts, self.settings, cancel))

    def stats(self) -> IndexStats:
        return self.index.stats()

    def close(self) -> None:
        self.index.close()
