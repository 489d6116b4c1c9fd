"""The chat's widgets; they talk to the app through Message classes."""

from .conversation import AnswerView, Conversation, QuestionView
from .prompt import PromptInput
from .screens import ChoiceScreen, ConfirmScreen, HelpScreen, PaperScreen, PathScreen
from .sources import SourceCard, SourcesPanel
from .status import StatusLine, TaskBar

__all__ = [
    "AnswerView", "ChoiceScreen", "ConfirmScreen", "Conversation", "HelpScreen", "PaperScreen", "PathScreen",
    "PromptInput", "QuestionView", "SourceCard", "SourcesPanel", "StatusLine", "TaskBar",
]
