"""The one public API: the CLI, the TUI and library users all go through `Assistant`."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .answering import AnswerStream, build_passages, condense, generate_answer, refusal, relevant
from .corpus import dedupe, read_corpus
from .embeddings import Embedder
from .errors import CorpusError, EmptyQuestionError, IndexMissingError
from .index import Index, IndexStats, IngestReport, Progress
from .retrieve import Mode, Retriever
from .safety import SafeGenerator
from .settings import Settings, remote_model
from .llm import Generator
from .models import ModelRegistry
from .models import Progress as ModelProgress
from .prompts import Template, load_prompts
from .provenance import Provenance
from .types import Answer, Hit, Paper, Timings

MAX_QUESTION_CHARS = 2000
_WORD = re.compile(r"[^\W_]")  # a letter or digit, in any script


def clean_question(question: str) -> tuple[str, bool]:
    """The question stripped and cut to a sane length; the flag says whether it was cut."""
    text = " ".join((question or "").split())
    if not text:
        raise EmptyQuestionError("the question is empty; type a question about the papers")
    if not _WORD.search(text):  # "?!?! ... ;;": nothing to search for, nothing to ask a model
        raise EmptyQuestionError("the question has no words (only punctuation or symbols); type a question about the papers")
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
        self.provenance = Provenance(self.settings.home, self.settings.index_dir)

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

        If another process is ingesting into the same data dir, waits for it (`on_wait` is told why).
        """
        started = time.perf_counter()  # the report's seconds cover the whole run, reading included
        read = read_corpus(list(paths) if paths is not None else None)
        papers = dedupe(read.papers, read.where, read.problems)  # a replaced duplicate is a problem line
        papers_read = len(read.papers)
        read.papers.clear()  # only the records a duplicate replaced were not handed on: they can go
        if not papers:
            detail = f": {read.problems[0]}" if read.problems else ""
            raise CorpusError(f"nothing could be ingested ({len(read.problems)} problems){detail}")
        report = self.index.ingest(papers, progress=progress, rebuild=rebuild, on_wait=on_wait)
        self.provenance.record((s for p in papers for s in p.sources), replace=rebuild)
        report.files, report.papers_read, report.sanitized = read.files, papers_read, read.sanitized
        report.problems = read.problems + report.problems
        report.seconds = time.perf_counter() - started
        return report

    def ensure_index(
        self, progress: Progress | None = None, on_wait: Callable[[str], None] | None = None
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
    def search(
        self, question: str, k: int = 10, *, mode: Mode = "hybrid", source: str | None = None, year: int | None = None
    ) -> list[Hit]:
        """The k most relevant passages, at most one per paper."""
        text, _ = clean_question(question)
        self._open_for_search()
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
        stream = AnswerStream(iter(()))
        stream._pieces = self._answer_pieces(stream, question, list(history or []))
        return stream

    def ask(self, question: str, history: Sequence[Answer] | None = None) -> Answer:
        """Answer `question` (a follow-up if `history` holds earlier answers) with verified citations."""
        stream = self.stream(question, history)
        for _ in stream:
            pass
        assert stream.answer is not None
        return stream.answer

    def _answer_pieces(self, stream: AnswerStream, question: str, history: list[Answer]):
        started = time.perf_counter()
        text, truncated = clean_question(question)
        notices = [f"the question was cut to its first {MAX_QUESTION_CHARS} characters"] if truncated else []
        prompts = self.prompts  # fail early on a broken prompt file
        self._open_for_search()
        generator = None
        standalone = text
        if history:
            generator = SafeGenerator(self.load_generator())
            standalone = condense(text, history, generator, prompts)
        hits = self.retriever.search(standalone, self.settings.candidates_for_answer)
        timings = Timings(retrieve_s=time.perf_counter() - started)
        if not relevant(standalone, hits, self.settings):
            timings.total_s = time.perf_counter() - started
            stream.answer = refusal(text, standalone, timings, notices, None, "nothing relevant was retrieved")
            yield stream.answer.text
            return
        generator = generator or SafeGenerator(self.load_generator())  # model output is untrusted text too
        passages = build_passages(standalone, hits, self.index.catalog, generator, self.settings)
        yield from generate_answer(
            stream, question=text, standalone=standalone, passages=passages, generator=generator, prompts=prompts,
            settings=self.settings, timings=timings, started=started, notices=notices,
        )

    def stats(self) -> IndexStats:
        return self.index.stats()

    def close(self) -> None:
        self.index.close()
