"""The chat's widgets; they talk to the app through Message classes."""

from .conversation import AnswerView, Conversation, QuestionView
from .prompt import PromptInput, SearchInput
from .screens import (
    AskScreen,
    ChatsScreen,
    ChoiceScreen,
    ConfirmScreen,
    HelpScreen,
    LogEntry,
    LogScreen,
    Modal,
    PaperScreen,
    PathScreen,
    WhyScreen,
)
from .sources import SourceCard, SourcesPanel
from .status import StatusLine, TaskBar

__all__ = [
    "AnswerView",
    "AskScreen",
    "ChatsScreen",
    "ChoiceScreen",
    "ConfirmScreen",
    "Conversation",
    "HelpScreen",
    "LogEntry",
    "LogScreen",
    "Modal",
    "PaperScreen",
    "PathScreen",
    "PromptInput",
    "QuestionView",
    "SearchInput",
    "SourceCard",
    "SourcesPanel",
    "StatusLine",
    "TaskBar",
    "WhyScreen",
]
