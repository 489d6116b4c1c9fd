"""What the chat's workers share with the UI: the tasks, the turns and the messages the workers post
(one dataclass each)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from textual.message import Message
from textual.worker import Worker

from rag import Answer, AnswerStream, Holding, IngestReport, Paper, RagError

from .timing import WallClock
from .widgets import AnswerView, QuestionView


class ModelLoadFailed(RagError):
    """The model could not be loaded for a question (the message says why)."""


@dataclass
class IngestTask:
    label: str
    rebuild: bool
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class Turn:
    """A question sent: queued, then answered."""

    id: int
    question: str  # as sent (cleaned, maybe cut)
    typed: str  # as typed (what Esc gives back)
    question_view: QuestionView
    answer_view: AnswerView
    clock: WallClock
    worker: Worker | None = None
    stream: AnswerStream | None = None
    holding: Holding | None = None
    replaces: int | None = None  # regenerate or edit: the index in `answers` of the answer it replaces
    keep_old: bool = False  # regenerate: the earlier answer stays on screen (dimmed) beside the new one


# --- messages from the workers ------------------------------------------------------------------
@dataclass
class AnswerStage(Message):
    turn: int
    stage: str
    since: float = field(default_factory=time.monotonic)


@dataclass
class AnswerPiece(Message):
    """A verified piece of the answer."""

    turn: int
    text: str


@dataclass
class AnswerDraft(Message):
    """The model's text that is not checked yet (shown dim), and why a sentence was not shown."""

    turn: int
    pending: str
    dropped: str | None = None


@dataclass
class AnswerDone(Message):
    turn: int
    answer: Answer
    papers: dict[str, Paper]
    locations: dict[str, str]


@dataclass
class AnswerFailed(Message):
    turn: int
    error: str
    server_down: bool = False  # the `rag serve` writing the answer failed (this process can answer instead)


@dataclass
class TaskStarted(Message):
    label: str
    total: int | None = None


@dataclass
class TaskAdvanced(Message):
    advance: int
    total: int | None


@dataclass
class TaskFinished(Message):
    pass


@dataclass
class IngestStarted(Message):
    task: IngestTask


@dataclass
class IngestEnded(Message):
    task: IngestTask
    report: IngestReport | None
    cancelled: bool
    papers: int | None
    error: str | None = None


@dataclass
class ModelChanged(Message):
    name: str
    state: str


@dataclass
class CorpusChanged(Message):
    papers: int | None


@dataclass
class PapersLoaded(Message):
    papers: dict[str, Paper]
    locations: dict[str, str]


@dataclass
class Problem(Message):
    """An error (or warning, or report) a worker met: a notification and a log entry."""

    message: str
    title: str = "Error"
    severity: str = "error"
