"""The one public API: the CLI, the TUI and library users all go through `Assistant`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from rag.answer.answering import (
    AnswerPipeline,
    AnswerRequest,
    AnswerStream,
)
from rag.answer.drafts import Drafts
from rag.answer.flow import AnswerFlow
from rag.answer.prompts import Template, load_prompts
from rag.answer.questions import MAX_QUESTION_CHARS, clean_question
from rag.answer.retrieve import Mode, RecallCheck, Retriever
from rag.backends.embeddings import make_embedder
from rag.backends.loaded import LoadedModel
from rag.backends.models import ModelRegistry
from rag.backends.models import Progress as ModelProgress
from rag.busy import Busy, Holding, held_as
from rag.corpus.provenance import Provenance
from rag.errors import (
    Cancelled,
    EmptyQuestionError,
    GenerationError,
    IndexMissingError,
    RagError,
)
from rag.ingest.from_files import ingest_paths
from rag.ingest.pipeline import IngestReport, Progress
from rag.protocols import Embedder, Generator
from rag.settings import Settings
from rag.store.catalog_base import committed_paper_count
from rag.store.datadir import catalog_errors
from rag.store.filters import Filters
from rag.store.index import Index, IndexStats
from rag.store.paper_vectors import make_paper_embedder
from rag.types import Answer, AnswerEvent, Hit, Paper, Prepared


class Assistant:
    """Ingest corpora, search them, and (with a model) answer questions with citations.

    Safe to call from several threads: its uses run one at a time (an answer, a search, a model load),
    and a caller that waits can be told for what (`using`). An ingest runs beside them on its own
    connection to the index: answers keep coming from what was committed, and see its papers once done.
    """

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
        self._model = LoadedModel(self.settings, generator)
        self._prompts: dict[str, Template] | None = None
        self.embedder: Embedder = embedder or make_embedder(self.settings)
        if paper_embedder is None and embedder is None:
            paper_embedder = make_paper_embedder(self.settings)
        self.paper_embedder = paper_embedder
        self.index = Index(self.settings, self.embedder, paper_embedder=paper_embedder)
        self.retriever = Retriever(self.index, self.settings)
        self.provenance = Provenance(self.settings.home, self.settings.index_dir)
        self.flow = AnswerFlow(self.settings, self.index, self.retriever, self.embedder, self._open_for_search)
        self._drafts = Drafts()  # a draft's preparation while the user types gives way to answers
        self._busy = Busy()
        self._index_changed = False  # an ingest committed papers: the index reopens before its next use

    @contextlib.contextmanager
    def using(
        self,
        label: str,
        cancelled: Callable[[], bool] | None = None,
        on_wait: Callable[[str], object] | None = None,
    ) -> Iterator[Holding]:
        """Hold the assistant as `label` around several calls (each of which holds it too); meanwhile other
        threads' calls wait. While another use holds it, `on_wait` is told "waiting for <what>" and
        `Cancelled` is raised once `cancelled()` is true. `holding.label` may be changed on the way. A
        damaged catalog inside is a one-line `RagError`."""
        with self._busy.hold(label, cancelled, on_wait) as holding, catalog_errors(self.index.catalog_path):
            self._reopen_if_changed()
            yield holding

    @property
    def busy_with(self) -> str | None:
        """What holds the assistant now ("an answer being written"), None when it is free."""
        return self._busy.holder

    def _reopen_now_if_free(self) -> None:
        """Close the index now if no other use holds the assistant (else its next use does)."""
        with contextlib.suppress(Cancelled), self._busy.hold("the index to reopen", wait=False):
            self._reopen_if_changed()

    def _reopen_if_changed(self) -> None:
        if self._index_changed:
            self._index_changed = False
            self.index.close()  # only the connections: they reopen on the next use

    # --- ingest ---------------------------------------------------------------------------
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

        If another process or thread is ingesting into the same data dir, waits for it (`on_wait` is told
        why). Answers, searches and look-ups are not held up: the ingest writes through its own
        connection to the index, and they see its papers once it is done.
        """
        writer = Index(self.settings, self.embedder, paper_embedder=self.paper_embedder)
        # Chroma shares one store among the clients of a path in a process: a reader left open would keep
        # the files a writer replaces (when it completes a swap cut short) in use. Closed if nothing uses it.
        self._index_changed = True
        self._reopen_now_if_free()
        try:
            with catalog_errors(writer.catalog_path):
                return ingest_paths(
                    writer,
                    self.provenance,
                    paths,
                    rebuild=rebuild,
                    progress=progress,
                    on_wait=on_wait,
                    limit=limit,
                    categories=categories,
                )
        finally:
            writer.close()
            self._index_changed = True
            self._reopen_now_if_free()

    def ensure_index(
        self, progress: Progress | None = None, on_wait: Callable[[str], object] | None = None
    ) -> IngestReport | None:
        """Build the index of the bundled corpus on first use: only in a data dir that never held an
        index (a lost index is an IndexMissingError that says what it held). Other uses wait for it."""
        with self.using("the first-run index build", on_wait=on_wait):
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
    @held_as("a search")
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
        return self._search(question, k, mode=mode, filters=filters)

    def _search(self, question: str, k: int, *, mode: Mode = "hybrid", filters: Filters | None = None) -> list[Hit]:
        text, _ = clean_question(question)
        self._open_for_search()
        return self.retriever.search(text, k, mode=mode, filters=filters)

    @held_as("a search")
    def filter_problem(self, filters: Filters) -> str | None:
        """Why these filters keep no paper ("no paper in the index has a year ..."), None if they keep some."""
        self._open_for_search()
        return self.retriever.filter_problem(filters)

    @held_as("a check of the index")
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
        return self._model.registry

    def load_generator(self, progress: ModelProgress | None = None) -> Generator:
        """The language model (assembled from its packages and verified on first use), loaded once;
        for `openai:NAME`, a client of the server at `base_url`, checked to answer."""
        with self.using(self._loading_label()):
            return self._model.load(progress)

    def _loading_label(self) -> str:
        try:
            return f"the model {self.model_name} to load"
        except RagError:  # an unreadable catalogue: loading says why
            return "the model to load"

    def load(self, progress: ModelProgress | None = None) -> Generator:
        """Load the language model and, meanwhile, pay the first search's one-time costs (see `warm_up`),
        so that the first question of a process is as fast as the next ones."""
        with self.using(self._loading_label()):
            # The search runs beside the load in a thread of its own, under this use of the assistant.
            warming = threading.Thread(target=self._warm_up, name="rag-warm-up", daemon=True)
            warming.start()
            try:
                return self._model.load(progress)
            finally:
                warming.join()

    def warm_up(self) -> None:
        """Import and open what a search uses (Chroma and its HNSW files, the BM25 arrays, the embedder's
        session) by running one search. A problem is left for the user's own search to report."""
        with self.using("a warm-up search"):
            self._warm_up()

    def _warm_up(self) -> None:
        try:
            with catalog_errors(self.index.catalog_path):
                self._search("warm up", k=1)
        except Exception:  # noqa: BLE001 - the real search raises the same error with its message
            pass

    def unload_model(self) -> None:
        """Free the language model's memory; the next question loads the model the settings name again."""
        with self.using("the model to unload"):
            self._model.unload()

    @property
    def model_loaded(self) -> bool:
        return self._model.generator is not None

    @property
    def model_name(self) -> str:
        """The loaded model's name, else the configured one (default: the first entry of models.txt)."""
        return self._model.name

    def set_model(self, name: str | None, progress: ModelProgress | None = None) -> Generator:
        """Switch to another model (a catalogue name, a .gguf path or openai:NAME) and load it; on failure keep the old one."""
        with self.using(f"the switch to model {name}"):
            return self._model.switch(name, progress)

    @held_as("a look-up of papers")
    def get_papers(self, paper_ids: Iterable[str]) -> dict[str, Paper]:
        """Full records (abstract, sources, ...) of indexed papers by id."""
        return self.index.catalog.get_papers(paper_ids)

    def stream(
        self, question: str, history: Sequence[Answer] | None = None, on_stage: Callable[[str], object] | None = None
    ) -> AnswerStream:
        """Answer `question`: iterate for verified text pieces; `.answer` holds the final `Answer`.

        `on_stage` is told "waiting for <what>" while another use holds the assistant, "searching"
        once the answer has it, and "reading the passages" (the model's prefill, up to its first token,
        which is a "token" event). The answer holds the assistant until the stream ends; cancelling
        it lets a caller that waits know it waits for "the stopped answer to end"."""
        earlier = list(history or [])
        held: list[Holding] = []

        def pipeline(cancel: threading.Event) -> AnswerPipeline:
            with catalog_errors(self.index.catalog_path):
                return (yield from self._answer(question, earlier, cancel, on_stage, held))

        def stopped() -> None:
            for holding in held:
                holding.label = "the stopped answer to end (the model stops at its next token)"

        return AnswerStream(pipeline, on_cancel=stopped)

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

    @held_as("a search")
    def shown_passages(self, question: str, history: Sequence[Answer] | None = None) -> list[Hit]:
        """The passages the model would be shown to answer `question` (none if nothing relevant was
        retrieved), without generating: where `rag eval --context-only` looks for the expected answer."""
        text, _ = clean_question(question)
        resolved, hits = self.flow.retrieve(text, list(history or []))
        if self.flow.gated(resolved, hits):
            return []
        return self.flow.passages(text, resolved, hits, self._model.load())

    def _answer(
        self,
        question: str,
        history: list[Answer],
        cancel: threading.Event,
        on_stage: Callable[[str], object] | None,
        held: list[Holding],
    ) -> AnswerPipeline:
        text, truncated = clean_question(question)
        request = AnswerRequest(text, text)  # the clock starts before a preparation in flight is stopped
        if truncated:
            request.notices.append(f"the question was cut to its first {MAX_QUESTION_CHARS} characters")
        try:
            # The stream's lock is not owned by this thread: a server steps the stream from several threads.
            with (
                self._drafts.answer(),
                self._busy.hold("an answer being written", cancel.is_set, on_stage, owned=False) as holding,
            ):
                held.append(holding)
                self._reopen_if_changed()
                if on_stage is not None:
                    on_stage("searching")
                flow = self.flow.answer(request, history, cancel, self.prompts, self._model.load, on_stage)
                return (yield from flow)
        except Cancelled:  # stopped while it waited: the stream ends cancelled, without an answer
            return None

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
        stop = cancel or threading.Event()
        with self._drafts.preparation(stop) as given_up:
            if given_up is None:  # an answer is on its way
                return None
            try:
                with self.using("the draft's preparation", given_up):
                    if self._drafts.answering:
                        return None
                    generator = self._model.generator  # never loads the model: typing must not wait for that
                    return self.flow.prepare(text, list(history or []), generator, self.prompts, stop)
            except Cancelled:
                return None

    @held_as("a count of the index")
    def stats(self) -> IndexStats:
        return self.index.stats()

    def paper_count(self) -> int:
        """How many papers the index holds (0 without an index). Never waits for another use: it reads
        what is committed through a connection of its own (during an ingest, what it committed so far)."""
        with catalog_errors(self.index.catalog_path):
            return committed_paper_count(self.index.catalog_path)

    @held_as("a count of the index")
    def has_index(self) -> bool:
        """Whether anything has been ingested into this data dir."""
        return self.index.exists()

    def close(self) -> None:
        """Let go of the index (it reopens on the next use); waits for the use that holds the assistant."""
        with self._busy.hold("closing"):
            self.index.close()
