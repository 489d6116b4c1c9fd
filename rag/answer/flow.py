"""From a question to a checked answer over one index: retrieve (a follow-up rewritten with its
topic), refuse without the model when nothing relevant was found, choose the passages the model is
shown, then generate and check the answer (`rag.answer.answering`)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rag.answer.answering import QUESTION_SLOT, AnswerPipeline, AnswerRequest, generate_answer, render_prefix
from rag.answer.followups import Standalone, asks_for_authors, needs_subject, standalone
from rag.answer.passages import build_passages, relevant
from rag.answer.prompts import Template
from rag.answer.retrieve import Retriever
from rag.backends.llm import Stoppable
from rag.protocols import Embedder, Generator, Prefiller
from rag.safety import SafeGenerator
from rag.settings import Settings
from rag.store.index import Index
from rag.types import Answer, AnswerEvent, Hit, Paper, Prepared


class AnswerFlow:
    """The steps of an answer that need the index; the Assistant adds the model, the prompts and
    who may run when (answers stop a draft's preparation)."""

    def __init__(
        self,
        settings: Settings,
        index: Index,
        retriever: Retriever,
        embedder: Embedder,
        open_index: Callable[[], None],
    ):
        self.settings = settings
        self.index = index
        self.retriever = retriever
        self.embedder = embedder
        self.open_index = open_index  # opens the index for search (a lost index: says what it held)

    def retrieve(self, text: str, history: Sequence[Answer]) -> tuple[Standalone, list[Hit]]:
        """The question as retrieval sees it (a follow-up rewritten with its topic) and what it finds."""
        self.open_index()
        catalog = self.index.catalog
        topic_ids = [c.paper_id for a in history for c in a.citations]
        resolved = standalone(text, history, catalog.get_papers(topic_ids) if topic_ids else {})
        hits = self.retriever.search(resolved.text, self.settings.retrieval.candidates_for_answer)
        if resolved.topic_id is not None:
            hits = self.retriever.prefer(hits, resolved.topic_id, text)
        return resolved, hits

    def gated(self, resolved: Standalone, hits: Sequence[Hit]) -> bool:
        """Refused without the model: nothing retrieved is close enough (a follow-up has its topic)."""
        return resolved.topic_id is None and not relevant(resolved.text, hits, self.settings)

    def passages(self, text: str, resolved: Standalone, hits: Sequence[Hit], generator: Generator) -> list[Hit]:
        # Sentences are chosen by the question's own words: a follow-up's substituted paper name would
        # favour the sentences that repeat the title over the ones that answer.
        focus = text if resolved.topic_id is not None else resolved.text
        embedder = self.embedder if self.settings.answer.context_by_meaning else None
        return build_passages(focus, hits, self.index.catalog, generator, self.settings, embedder)

    def prepare(
        self,
        text: str,
        history: Sequence[Answer],
        generator: Generator | None,
        prompts: dict[str, Template],
        cancel: threading.Event,
    ) -> Prepared:
        """Retrieve for a draft question as its answer would and, with a model that can (`Prefiller`),
        evaluate the prompt up to the question into the model's cache; stops between steps on `cancel`."""
        resolved, hits = self.retrieve(text, history)
        prepared = Prepared(resolved.text)
        if self.gated(resolved, hits) or generator is None or cancel.is_set():
            return prepared
        passages = self.passages(text, resolved, hits, generator)
        prepared.paper_ids = [p.paper_id for p in passages]
        if isinstance(generator, Prefiller) and not cancel.is_set():
            prepared.prefill = generator.prefill(render_prefix(prompts, passages), upto=QUESTION_SLOT, cancel=cancel)
        return prepared

    def answer(
        self,
        request: AnswerRequest,
        history: list[Answer],
        cancel: threading.Event,
        prompts: dict[str, Template],
        load_generator: Callable[[], Generator],
        on_stage: Callable[[str], object] | None = None,
    ) -> AnswerPipeline:
        """The answer's events, ending with the `Answer`: refused without the model when nothing
        relevant was retrieved (or the question cannot be answered as asked), else generated from the
        passages and checked sentence by sentence."""
        text = request.question
        unresolved = needs_subject(text, history)
        if unresolved is not None:  # "what about its accuracy?" in a new chat: ask which paper
            return (yield from self._answered_without_model(request, unresolved.reason, unresolved.clarification))
        resolved, hits = self.retrieve(text, history)
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
        if self.gated(resolved, hits):
            best = max((h.dense_score or 0.0 for h in hits), default=0.0)
            answer = request.refusal(
                f"nothing relevant was retrieved (best similarity {best:.2f}, {self.settings.retrieval.min_relevance:.2f} needed)"
            )
            yield AnswerEvent("sentence", answer.text, request.elapsed())
            return answer
        model = load_generator()
        generator = SafeGenerator(model)  # model output is untrusted text too
        if on_stage is not None:
            on_stage("reading the passages")
        passages = self.passages(text, resolved, hits, generator)
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
