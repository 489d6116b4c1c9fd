"""The one public API: the CLI, the TUI and library users all go through `Assistant`."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from rag.answer.answering import (
    QUESTION_SLOT,
    AnswerPipeline,
    AnswerRequest,
    AnswerStream,
    render_prefix,
)
from rag.answer.flow import AnswerFlow
from rag.answer.prompts import Template, load_prompts
from rag.answer.questions import MAX_QUESTION_CHARS, clean_question
from rag.answer.retrieve import Mode, RecallCheck, Retriever
from rag.backends.embeddings import make_embedder
from rag.backends.llm import make_generator
from rag.backends.models import ModelRegistry
from rag.backends.models import Progress as ModelProgress
from rag.corpus.provenance import Provenance
from rag.errors import (
    EmptyQuestionError,
    GenerationError,
    IndexMissingError,
)
from rag.ingest.from_files import ingest_paths
from rag.ingest.pipeline import IngestReport, Progress
from rag.protocols import Embedder, Generator, Prefiller
from rag.settings import Settings
from rag.store.catalog_base import damaged
from rag.store.datadir import storage_problem
from rag.store.filters import Filters
from rag.store.index import Index, IndexStats
from rag.store.paper_vectors import make_paper_embedder
from rag.types import Answer, AnswerEvent, Hit, Paper, Prepared


@contextlib.contextmanager
def catalog_errors(path: Path) -> Iterator[None]:
    """SQLite errors from a damaged page that the open-time checks did not reach become one
    `IndexCorruptError` that says what to do (for the CLI and the chat alike); a full or read-only
    disk is named as such."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        raise storage_problem(exc, path.parent) or damaged(path, str(exc)) from exc


P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[Concatenate[Assistant, P], R]) -> Callable[Concatenate[Assistant, P], R]:
    """Run an `Assistant` method under `catalog_errors`."""

    @functools.wraps(method)
    def wrapper(self: Assistant, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with catalog_errors(self.index.catalog_path):
            return method(self, *args, **kwargs)

    return wrapper


class Assistant:
    """Ingest corpora, search them, and (with a model) answer questions with citations."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        paper_embedder: Embedder | None = None,
    ):
        """Models come from `settings` unless given: `embedder` embeds chunks (and queries), `paper_embedder`
        whole abstracts (`rag.store.paper_vectors`; when an `embedder` is given, there is none unless given too)."""
        self.settings = settings or Settings.load()
        self._generator = generator
        self._prompts: dict[str, Template] | None = None
        self.embedder: Embedder = embedder or make_embedder(self.settings)
        if paper_embedder is None and embedder is None:
            paper_embedder = make_paper_embedder(self.settings)
        self.paper_embedder = paper_embedder
        self.index = Index(self.settings, self.embedder, paper_embedder=paper_embedder)
        self.retriever = Retriever(self.index, self.settings)
        self.provenance = Provenance(self.settings.home, self.settings.index_dir)
        self.flow = AnswerFlow(self.settings, self.index, self.retriever, self.embedder, self._open_for_search)
        self._models: ModelRegistry | None = None
        # A draft's preparation runs while the user types; an answer stops it (between two steps)
        # and no preparation starts while an answer is on its way.
        self._preparing = threading.Lock()
        self._prepare_cancel: threading.Event | None = None
        self._answers_running = 0
        self._counting = threading.Lock()  # `+=` on an attribute is not atomic (free-threaded Python)

    # --- ingest ---------------------------------------------------------------------------
    @_guarded
    def ingest(
        self,
        paths: Iterable[Path | str] | None = None,
        rebuild: bool = False,
        progress: Progress | None = None,
        on_wait: Callable[[str], object] | None = None,
        *,
        limit: int | None = None,
        categories: Sequence[str] = (),
    ) -> IngestReport:
        """Index files or folders (None: the bundled corpus). Unchanged papers are not re-embedded.

        Files are read as they are embedded (JSON Lines such as the arXiv snapshot in batches: memory
        does not grow with the file). `categories` keeps only papers in one of these categories or
        their subcategories ("cs" takes cs.CL, cs.LG, ...); `limit` stops after that many distinct
        papers (in input order, after the category filter: the same command run again resumes where
        a failure cut it, and a larger limit continues).

        `rebuild` embeds everything into a new index that replaces the current one once complete;
        with no paths it re-embeds the papers already indexed (e.g. after changing the embedding model).

        If another process is ingesting into the same data dir, waits for it (`on_wait` is told why).
        """
        return ingest_paths(
            self.index,
            self.provenance,
            paths,
            rebuild=rebuild,
            progress=progress,
            on_wait=on_wait,
            limit=limit,
            categories=categories,
        )

    @_guarded
    def ensure_index(
        self, progress: Progress | None = None, on_wait: Callable[[str], object] | None = None
    ) -> IngestReport | None:
        """Build the index of the bundled corpus on first use: only in a data dir that never held an
        index (a lost index is an IndexMissingError that says what it held)."""
        if self.index.exists():
            return None
        if not self.first_run:
            raise self.provenance.missing()
        return self.ingest(progress=progress, on_wait=on_wait)

    @property
    def first_run(self) -> bool:
        """No index was ever built in this data dir (so the bundled corpus may be indexed unasked)."""
        return not self.index.exists() and self.provenance.never_built()

    def _open_for_search(self) -> None:
        try:
            self.index.open_for_search()
        except IndexMissingError:
            if self.provenance.never_built():
                raise
            raise self.provenance.missing() from None

    # --- search ---------------------------------------------------------------------------
    @_guarded
    def search(
        self,
        question: str,
        k: int = 10,
        *,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
    ) -> list[Hit]:
        """The k most relevant passages, at most one per paper; with `filters`, only of the papers that
        pass them (`Filters.of(source=..., author=..., year=..., since=..., until=...)`)."""
        text, _ = clean_question(question)
        self._open_for_search()
        return self.retriever.search(text, k, mode=mode, filters=filters)

    @_guarded
    def filter_problem(self, filters: Filters) -> str | None:
        """Why these filters keep no paper ("no paper in the index has a year ..."), None if they keep some."""
        self._open_for_search()
        return self.retriever.filter_problem(filters)

    @_guarded
    def check_recall(self, sample: int = 200) -> RecallCheck:
        """Does the vector store find `sample` random indexed chunks by their own vectors? (`rag doctor`)"""
        self._open_for_search()
        return self.retriever.recall_check(sample)

    # --- answers --------------------------------------------------------------------------
    @property
    def prompts(self) -> dict[str, Template]:
        if self._prompts is None:
            self._prompts = load_prompts(self.settings.answer.prompts_dir)
        return self._prompts

    @property
    def models(self) -> ModelRegistry:
        """The model catalogue (models.txt, read once)."""
        if self._models is None:
            self._models = ModelRegistry(self.settings)
        return self._models

    def load_generator(self, progress: ModelProgress | None = None) -> Generator:
        """The language model (assembled from its packages and verified on first use), loaded once;
        for `openai:NAME`, a client of the server at `base_url`, checked to answer."""
        if self._generator is None:
            self._generator = make_generator(self.settings, registry=self._models, progress=progress)
        return self._generator

    def load(self, progress: ModelProgress | None = None) -> Generator:
        """Load the language model and, meanwhile, pay the first search's one-time costs (see `warm_up`),
        so that the first question of a process is as fast as the next ones."""
        warming = threading.Thread(target=self.warm_up, name="rag-warm-up", daemon=True)
        warming.start()
        try:
            return self.load_generator(progress)
        finally:
            warming.join()

    def warm_up(self) -> None:
        """Import and open what a search uses (Chroma and its HNSW files, the BM25 arrays, the embedder's
        session) by running one search. A problem is left for the user's own search to report."""
        try:
            self.search("warm up", k=1)
        except Exception:  # noqa: BLE001 - the real search raises the same error with its message
            pass

    def unload_model(self) -> None:
        """Free the language model's memory; the next question loads the model the settings name again."""
        generator, self._generator = self._generator, None
        close = getattr(generator, "close", None)
        if callable(close):
            close()

    @property
    def model_loaded(self) -> bool:
        return self._generator is not None

    @property
    def model_name(self) -> str:
        """The loaded model's name, else the configured one (default: the first entry of models.txt)."""
        if self._generator is not None:
            return self._generator.name
        return self.settings.models.model or self.models.default.name

    def set_model(self, name: str | None, progress: ModelProgress | None = None) -> Generator:
        """Switch to another model (a catalogue name, a .gguf path or openai:NAME) and load it; on failure keep the old one."""
        previous, previous_model = self._generator, self.settings.models.model
        self.settings.set("model", name, given_as="model")  # checked as RAG_MODEL is (a SettingsError changes nothing)
        self._generator = None
        try:
            return self.load_generator(progress)
        except Exception:
            self.settings.set("model", previous_model)
            self._generator = previous
            raise

    @_guarded
    def get_papers(self, paper_ids: Iterable[str]) -> dict[str, Paper]:
        """Full records (abstract, sources, ...) of indexed papers by id."""
        return self.index.catalog.get_papers(paper_ids)

    def stream(
        self, question: str, history: Sequence[Answer] | None = None, on_stage: Callable[[str], object] | None = None
    ) -> AnswerStream:
        """Answer `question`: iterate for verified text pieces; `.answer` holds the final `Answer`.

        `on_stage` is told when the answer moves from "searching" to "reading the passages" (the
        model's prefill, up to its first token, which is a "token" event)."""
        earlier = list(history or [])

        def pipeline(cancel: threading.Event) -> AnswerPipeline:
            with catalog_errors(self.index.catalog_path):
                return (yield from self._answer(question, earlier, cancel, on_stage))

        return AnswerStream(pipeline)

    def events(self, question: str, history: Sequence[Answer] | None = None) -> Iterator[AnswerEvent]:
        """Answer `question` step by step: "token" events as the model writes (not yet checked),
        "sentence" when one is verified, "dropped" when one is not (with the reason), and "done"
        with the final `Answer` (the same `ask()` returns). Stop iterating to stop the model."""
        return self.stream(question, history).events()

    def ask(self, question: str, history: Sequence[Answer] | None = None) -> Answer:
        """Answer `question` (a follow-up if `history` holds earlier answers) with verified citations."""
        stream = self.stream(question, history)
        for _ in stream:
            pass
        if stream.answer is None:
            raise GenerationError("the answer was cancelled before it was complete; ask again")
        return stream.answer

    @_guarded
    def shown_passages(self, question: str, history: Sequence[Answer] | None = None) -> list[Hit]:
        """The passages the model would be shown to answer `question` (none if nothing relevant was
        retrieved), without generating: where `rag eval --context-only` looks for the expected answer."""
        text, _ = clean_question(question)
        resolved, hits = self.flow.retrieve(text, list(history or []))
        if self.flow.gated(resolved, hits):
            return []
        return self.flow.passages(text, resolved, hits, self.load_generator())

    def _stop_preparing(self) -> None:
        """Stop a draft's preparation in flight and wait for it (at most one of its steps)."""
        cancel = self._prepare_cancel
        if cancel is not None:
            cancel.set()
        with self._preparing:
            pass

    def _answer(
        self,
        question: str,
        history: list[Answer],
        cancel: threading.Event,
        on_stage: Callable[[str], object] | None = None,
    ) -> AnswerPipeline:
        text, truncated = clean_question(question)
        request = AnswerRequest(text, text)  # the clock starts before a preparation in flight is stopped
        if truncated:
            request.notices.append(f"the question was cut to its first {MAX_QUESTION_CHARS} characters")
        with self._counting:
            self._answers_running += 1
        try:
            self._stop_preparing()
            return (yield from self.flow.answer(request, history, cancel, self.prompts, self.load_generator, on_stage))
        finally:
            with self._counting:
                self._answers_running -= 1

    @_guarded
    def prepare(
        self, draft: str, history: Sequence[Answer] | None = None, cancel: threading.Event | None = None
    ) -> Prepared | None:
        """Get ready to answer `draft` (a question still being typed): retrieve for it as `ask()`
        would and, with an in-process llama.cpp model already loaded, evaluate the prompt up to the
        question into its KV cache. If the question sent is the draft (or retrieves the same
        passages), its answer then only evaluates the question and the answer cue.

        Returns None for a draft with no words, or when an answer is running (a preparation never
        competes with one). Stops between steps when `cancel` is set, and when an answer or the
        preparation of a newer draft starts.
        """
        try:
            text, _ = clean_question(draft)
        except EmptyQuestionError:
            return None
        cancel = cancel or threading.Event()
        if self._answers_running:
            return None
        self._stop_preparing()  # the newer draft wins
        self._preparing.acquire()
        try:
            self._prepare_cancel = cancel
            if self._answers_running:
                return None
            resolved, hits = self.flow.retrieve(text, list(history or []))
            prepared = Prepared(resolved.text)
            generator = self._generator  # never loads the model: typing must not wait for that
            if self.flow.gated(resolved, hits) or generator is None or cancel.is_set():
                return prepared
            passages = self.flow.passages(text, resolved, hits, generator)
            prepared.paper_ids = [p.paper_id for p in passages]
            if isinstance(generator, Prefiller) and not cancel.is_set():
                prepared.prefill = generator.prefill(
                    render_prefix(self.prompts, passages), upto=QUESTION_SLOT, cancel=cancel
                )
            return prepared
        finally:
            self._prepare_cancel = None
            self._preparing.release()

    @_guarded
    def stats(self) -> IndexStats:
        return self.index.stats()

    @_guarded
    def paper_count(self) -> int:
        """How many papers the index holds (0 without an index)."""
        return self.index.catalog.paper_count() if self.index.catalog_path.exists() else 0

    @_guarded
    def has_index(self) -> bool:
        """Whether anything has been ingested into this data dir."""
        return self.index.exists()

    def close(self) -> None:
        self.index.close()
