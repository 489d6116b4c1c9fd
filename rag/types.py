"""The domain values: papers, chunks, retrieval hits, citations and answers."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_text(text: str) -> str:
    """Lower-case, Unicode-normalised, punctuation-free text: the identity of a title or abstract."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _NON_WORD.sub(" ", text).strip()


def _digest(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:length]


class Paper(BaseModel):
    """One paper: the unit a user cites. Its id is derived from its content, so it is stable."""

    title: str
    abstract: str
    source: str = Field(description="The file (and line) the paper was read from first.")
    sources: list[str] = Field(default_factory=list, description="Every file the paper was seen in.")
    authors: list[str] = Field(default_factory=list)
    year: int | None = None
    url: str | None = None
    categories: list[str] = Field(default_factory=list)

    def model_post_init(self, __context: object) -> None:
        if not self.sources:
            self.sources = [self.source]

    @property
    def title_key(self) -> str:
        """Dedup key: the same normalised title is the same paper."""
        return normalise_text(self.title)

    @property
    def paper_id(self) -> str:
        """Stable id from the normalised title and abstract; a changed abstract gets a new id."""
        return _digest(self.title_key, normalise_text(self.abstract))


class Chunk(BaseModel):
    """A piece of a paper's abstract sized for the embedder, with the title carried along."""

    paper_id: str
    position: int
    title: str
    text: str

    @property
    def chunk_id(self) -> str:
        return f"{self.paper_id}:{self.position}"

    @property
    def embedded_text(self) -> str:
        """What the embedder and the lexical index see: title and passage together."""
        return f"{self.title}. {self.text}"


def author_names(authors: Sequence[str], limit: int) -> str:
    """Authors as a reader (or the model) is shown them: "Jörg Müller, Loïc François et al.", the first
    `limit` with their first names first (BibTeX writes "Müller, Jörg": that comma would split a list)."""
    names = [_first_name_first(a) for a in authors[:limit]]
    return ", ".join(names) + (" et al." if len(authors) > limit else "")


def _first_name_first(author: str) -> str:
    last, comma, first = author.partition(",")
    return f"{first.strip()} {last.strip()}" if comma and first.strip() and "," not in first else author


MAX_BYLINE_AUTHORS = 5  # more are "et al.": a long author list would crowd the passages out of the prompt


@dataclass(slots=True)
class Hit:
    """One retrieved passage (hot path: a plain dataclass)."""

    chunk_id: str
    paper_id: str
    title: str
    text: str
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None
    dense_score: float | None = None
    paper_rank: int | None = None  # rank by the paper model's whole-abstract vector (`rag.store.paper_vectors`)
    paper_score: float | None = None  # its cosine to the question
    sources: list[str] = field(default_factory=list)
    year: int | None = None
    aliases: list[str] = field(default_factory=list)  # names the paper goes by (see rag.text.identity_names)
    named: bool = False  # the question called this paper by its own name
    authors: list[str] = field(default_factory=list)  # those the model may see (rag.safety.shown_authors)

    @property
    def byline(self) -> str:
        """The paper's authors and year as the model is shown them ("Zhenda Xie, Han Hu; 2022"), or ""."""
        names = author_names(self.authors, MAX_BYLINE_AUTHORS)
        return "; ".join(part for part in (names, str(self.year or "")) if part)

    @property
    def heading(self) -> str:
        """The title, with the byline when the corpus gave authors or a year: what the model may cite them from."""
        byline = self.byline
        return f"{self.title} — {byline}" if byline else self.title


EventKind = Literal["token", "sentence", "dropped", "done"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)


@dataclass(slots=True)
class AnswerEvent:
    """One step of an answer as it happens (hot path: a plain dataclass).

    kind: "token" (the model's raw text, not yet checked), "sentence" (a verified piece, as `stream()`
    yields it; the pieces joined are `Answer.text`), "dropped" (a sentence not shown; `reason` says
    why) and, last, "done" (`answer` is the same `Answer` that `ask()` returns). `t`: seconds since
    the question was asked.
    """

    kind: EventKind
    text: str
    t: float
    reason: str | None = None
    answer: Answer | None = None
    pending: str = ""  # after a "sentence" or "dropped": the model's text that is still unchecked

    def to_dict(self, report: bool = False) -> dict[str, Any]:
        """The event on the wire (`rag serve`'s event stream, `rag ask --events`): kind, text, t, and
        reason, pending and answer when set. The answer is the whole `Answer`, or with `report` the
        `AnswerReport` that `rag ask --json` prints."""
        data: dict[str, Any] = {"kind": self.kind, "text": self.text, "t": round(self.t, 3)}
        if self.reason:
            data["reason"] = self.reason
        if self.pending:
            data["pending"] = self.pending
        if self.answer is not None:
            data["answer"] = (AnswerReport.of(self.answer) if report else self.answer).model_dump(mode="json")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerEvent:
        """An event from `to_dict()`'s form (with the whole `Answer`); ValueError if it is not one."""
        kind = data.get("kind")
        if kind not in EVENT_KINDS:
            raise ValueError(f"not an answer event kind: {kind!r}")
        answer = Answer.model_validate(data["answer"]) if data.get("answer") is not None else None
        return cls(kind, str(data["text"]), float(data["t"]), data.get("reason"), answer, data.get("pending") or "")


class Citation(BaseModel):
    """A citation key in an answer, mapped to exactly one retrieved passage."""

    key: int
    paper_id: str
    title: str
    text: str
    supported: bool = True
    sentences: list[str] = Field(default_factory=list, description="The sentences of the passage the answer rests on.")


class Dropped(BaseModel):
    """A sentence of the model's draft that was not shown, and why."""

    text: str
    reason: str


@dataclass
class PrefillReport:
    """What a prefill did: the prompt prefix's tokens, how many were already in the KV cache, how
    many it evaluated now, and whether it got through them all (False: abandoned or not started)."""

    tokens: int
    cached: int
    evaluated: int
    complete: bool


@dataclass
class Prepared:
    """What `Assistant.prepare` did for a draft question: the question as searched, the papers of
    the passages an answer to it would be shown (in order; empty when it would be refused without
    the model), and the model's prefill of the prompt up to the question (None: no in-process model
    loaded, or nothing to prefill)."""

    question: str
    paper_ids: list[str] = field(default_factory=list)
    prefill: PrefillReport | None = None


class Timings(BaseModel):
    retrieve_s: float = 0.0
    first_token_s: float | None = None
    total_s: float = 0.0


class Answer(BaseModel):
    """The verified answer to one question."""

    question: str
    text: str
    citations: list[Citation] = Field(default_factory=list)
    refused: bool = False
    standalone_question: str | None = Field(
        default=None, description="The question as retrieval saw it (follow-ups are rewritten)."
    )
    raw_text: str = Field(default="", description="What the model wrote, before citation checks.")
    model: str | None = None
    timings: Timings = Field(default_factory=Timings)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    notices: list[str] = Field(default_factory=list, description="Things the user should know (e.g. truncation).")
    refusal_reason: str | None = None
    dropped: list[Dropped] = Field(default_factory=list, description="Model sentences not shown, with the reason.")
    quoted: bool = Field(
        default=False,
        description="The text quotes the passage sentence closest to the question: none of the model's was supported.",
    )

    passages: list[Citation] = Field(
        default_factory=list,
        description="The passages shown to the model, keyed as in its prompt (none: no model call).",
    )

    @property
    def dropped_sentences(self) -> list[str]:
        return [d.text for d in self.dropped]

    @property
    def dropped_reasons(self) -> list[str]:
        return [d.reason for d in self.dropped]


# --- what `rag search --json` and `rag ask --json` print -----------------------------------------
class SearchHit(BaseModel):
    rank: int
    paper_id: str
    title: str
    score: float
    text: str


class SearchReport(BaseModel):
    """A question and its passages, best first (`rag search --json`)."""

    query: str
    hits: list[SearchHit]

    @classmethod
    def of(cls, query: str, hits: Sequence[Hit]) -> SearchReport:
        return cls(
            query=query,
            hits=[
                SearchHit(rank=rank, paper_id=h.paper_id, title=h.title, score=round(h.score, 6), text=h.text)
                for rank, h in enumerate(hits, start=1)
            ],
        )


class CitedPassage(BaseModel):
    key: int
    paper_id: str
    title: str
    text: str


class AnswerReport(BaseModel):
    """An answer with what it cites and what it cost (`rag ask --json`)."""

    question: str
    answer: str
    refused: bool
    citations: list[CitedPassage]
    timings: Timings
    model: str | None
    standalone_question: str | None
    prompt_tokens: int
    completion_tokens: int
    quoted: bool = False  # the answer quotes a passage sentence (see `Answer.quoted`)

    @classmethod
    def of(cls, answer: Answer) -> AnswerReport:
        return cls(
            question=answer.question,
            answer=answer.text,
            refused=answer.refused,
            citations=[
                CitedPassage(key=c.key, paper_id=c.paper_id, title=c.title, text=c.text) for c in answer.citations
            ],
            timings=answer.timings,
            model=answer.model,
            standalone_question=answer.standalone_question,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            quoted=answer.quoted,
        )
