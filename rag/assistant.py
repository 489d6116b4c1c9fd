"""The one public API: the CLI, the TUI and library users all go through `Assistant`."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from rag.answer.answering import (
    QUESTION_SLOT,
    AnswerPipeline,
    AnswerRequest,
    AnswerStream,
    generate_answer,
    render_prefix,
)
from rag.answer.followups import Standalone, asks_for_authors, needs_subject, standalone
from rag.answer.passages import build_passages, relevant
from rag.answer.prompts import Template, load_prompts
from rag.answer.questions import MAX_QUESTION_CHARS, clean_question
from rag.answer.retrieve import Mode, RecallCheck, Retriever
from rag.backends.embeddings import make_embedder
from rag.backends.llm import Stoppable, make_generator
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
from rag.safety import SafeGenerator
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
            self._prompts = load_prompts(self.settings.prompts_dir)
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

    def _retrieve(self, text: str, history: Sequence[Answer]) -> tuple[Standalone, list[Hit]]:
        """The question as retrieval sees it (a follow-up rewritten with its topic) and what it finds."""
        self._open_for_search()
        catalog = self.index.catalog
        topic_ids = [c.paper_id for a in history for c in a.citations]
        resolved = standalone(text, history, catalog.get_papers(topic_ids) if topic_ids else {})
        hits = self.retriever.search(resolved.text, self.settings.candidates_for_answer)
        if resolved.topic_id is not None:
            hits = self.retriever.prefer(hits, resolved.topic_id, text)
        return resolved, hits

    @_guarded
    def shown_passages(self, question: str, history: Sequence[Answer] | None = None) -> list[Hit]:
        """The passages the model would be shown to answer `question` (none if nothing relevant was
        retrieved), without generating: where `rag eval --context-only` looks for the expected answer."""
        text, _ = clean_question(question)
        resolved, hits = self._retrieve(text, list(history or []))
        if self._gated(resolved, hits):
            return []
        return self._passages(text, resolved, hits, self.load_generator())

    def _gated(self, resolved: Standalone, hits: Sequence[Hit]) -> bool:
        """Refused without the model: nothing retrieved is close enough (a follow-up has its topic)."""
        return resolved.topic_id is None and not relevant(resolved.text, hits, self.settings)

    def _passages(self, text: str, resolved: Standalone, hits: Sequence[Hit], generator: Generator) -> list[Hit]:
        # Sentences are chosen by the question's own words: a follow-up's substituted paper name would
        # favour the sentences that repeat the title over the ones that answer.
        focus = text if resolved.topic_id is not None else resolved.text
        embedder = self.embedder if self.settings.context_by_meaning else None
        return build_passages(focus, hits, self.index.catalog, generator, self.settings, embedder)

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
            return (yield from self._answer_request(request, history, cancel, on_stage))
        finally:
            with self._counting:
                self._answers_running -= 1

    def _answer_request(
        self,
        request: AnswerRequest,
        history: list[Answer],
        cancel: threading.Event,
        on_stage: Callable[[str], object] | None = None,
    ) -> AnswerPipeline:
        text = request.question
        prompts = self.prompts  # fail early on a broken prompt file
        unresolved = needs_subject(text, history)
        if unresolved is not None:  # "what about its accuracy?" in a new chat: ask which paper
            return (yield from self._answered_without_model(request, unresolved.reason, unresolved.clarification))
        resolved, hits = self._retrieve(text, history)
        request.standalone = resolved.text
        request.timings.retrieve_s = time.perf_counter() - request.started
        if asks_for_authors(text) and (anonymous := self._paper_without_authors(resolved, hits)) is not None:
            what = f"the corpus has no author data for “{anonymous.title}”"
            return (
                yield from self._answered_without_model(
                    request,
                    f"{what} (its record, from {Path(anonymous.source).name}, lists no authors)",
                    f"The corpus has no author data for “{anonymous.title}”: its record lists no authors, "
                    "so who wrote it cannot be answered from the corpus.",
                )
            )
        if self._gated(resolved, hits):
            best = max((h.dense_score or 0.0 for h in hits), default=0.0)
            answer = request.refusal(
                f"nothing relevant was retrieved (best similarity {best:.2f}, {self.settings.min_relevance:.2f} needed)"
            )
            yield AnswerEvent("sentence", answer.text, request.elapsed())
            return answer
        model = self.load_generator()
        generator = SafeGenerator(model)  # model output is untrusted text too
        if on_stage is not None:
            on_stage("reading the passages")
        passages = self._passages(text, resolved, hits, generator)
        # A cancel stops the model even while it reads the passages (llama.cpp: within milliseconds).
        with model.stopping(cancel) if isinstance(model, Stoppable) else contextlib.nullcontext():
            return (
                yield from generate_answer(request, passages, generator, prompts, self.settings, cancel, self.embedder)
            )

    def _answered_without_model(self, request: AnswerRequest, reason: str, text: str) -> AnswerPipeline:
        """An answer that says why the corpus cannot answer this as asked (`refused`, no model call)."""
        answer = request.refusal(reason)
        answer.text = text
        yield AnswerEvent("sentence", text, request.elapsed())
        return answer

    def _paper_without_authors(self, resolved: Standalone, hits: Sequence[Hit]) -> Paper | None:
        """The paper a question about its authors is about (the conversation's, or the one it names),
        if the corpus records no authors for it."""
        paper_id = resolved.topic_id or next((h.paper_id for h in hits[:1] if h.named), None)
        if paper_id is None:
            return None
        paper = self.index.catalog.get_papers([paper_id]).get(paper_id)
        return paper if paper is not None and not paper.authors else None

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
            resolved, hits = self._retrieve(text, list(history or []))
            prepared = Prepared(resolved.text)
            generator = self._generator  # never loads the model: typing must not wait for that
            if self._gated(resolved, hits) or generator is None or cancel.is_set():
                return prepared
            passages = self._passages(text, resolved, hits, generator)
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
