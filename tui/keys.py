"""The chat's keys: one table for the bindings, the footer, the F1 help and the command palette.

Every app-wide key is one that no focused widget takes for itself: Textual's TextArea (the
question input) binds F6, F7, Ctrl+A/C/D/E/K/U/V/W/X/Y/Z and the arrows, and Input binds most of
the same, so none of those appear here. `tests/test_tui.py` presses each key below with the input
focused. Ctrl+C is a priority binding so that it reaches the app while the input has focus, but
only while there is something to cancel; otherwise it falls through to Textual's copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Key:
    keys: str  # Textual key names, comma-separated; "" for a command without a key
    action: str  # the App's action_<name>
    label: str  # footer and palette title
    help: str  # one line for the help screen and the palette
    title: str = ""  # the palette's title (default: the label)
    shown: str = ""  # how the help writes the keys (default: derived from `keys`)
    footer: bool = True
    priority: bool = False

    @property
    def palette_title(self) -> str:
        return self.title or self.label

    @property
    def display(self) -> str:
        if self.shown or not self.keys:
            return self.shown
        names = {"escape": "Esc", "question_mark": "?"}
        out = []
        for key in self.keys.split(","):
            if key in names:
                out.append(names[key])
            else:
                out.append("+".join(p.upper() if p[1:].isdigit() else p.capitalize() for p in key.split("+")))
        return ", ".join(out)


# App-wide keys, in the order of the help screen (the footer shows those with footer=True).
APP_KEYS = [
    Key(
        "escape,ctrl+c",
        "cancel",
        "Cancel",
        "stop the answer (the question comes back), or else the running ingest",
        title="Cancel",
        priority=True,
    ),
    Key("ctrl+n", "new_chat", "New", "new chat (an unfinished question stays in the input)", title="New chat"),
    Key("ctrl+o", "chats", "Chats", "saved chats: open, search, rename, delete, export", title="Open saved chat"),
    Key("ctrl+r", "regenerate", "Again", "answer the last question again", title="Answer again", footer=False),
    Key("f2", "switch_model", "Model", "switch model (remembered for the next start)", title="Switch model"),
    Key("f3", "copy_answer", "Copy", "copy the selected answer with its references", title="Copy answer"),
    Key(
        "f4",
        "why",
        "Why?",
        "why this answer or refusal: question searched, passages, dropped sentences",
        title="Why this answer?",
    ),
    Key(
        "f5",
        "reingest",
        "Re-ingest",
        "re-ingest the bundled corpus (unchanged papers are skipped)",
        title="Re-ingest corpus",
        footer=False,
    ),
    Key(
        "f8",
        "toggle_sources",
        "Sources",
        "show or hide the sources (hidden by itself when narrow)",
        title="Show or hide sources",
    ),
    Key(
        "f9", "rebuild", "Rebuild", "re-embed every indexed paper into a new index", title="Rebuild index", footer=False
    ),
    Key("ctrl+l", "show_log", "Log", "the log: ingest reports, skipped records, errors", title="Log", footer=False),
    Key("f1", "help", "Keys", "these keys (also ? on an answer or a source)", title="Keys"),
]

# Commands of the palette (Ctrl+P) that have no key of their own.
COMMANDS = [
    Key(
        "",
        "ingest_path",
        "Ingest",
        "add papers from a .txt/.jsonl/.json/.bib/.csv file or a folder",
        title="Ingest file or folder",
    ),
    Key(
        "",
        "export_chat",
        "Export",
        "write this chat as Markdown, with references, to RAG_HOME/exports",
        title="Export chat to Markdown",
    ),
    Key("", "rename_chat", "Rename", "give this chat another title", title="Rename chat"),
    Key("", "clear_chat", "Clear", "take every question and answer off this chat", title="Clear chat"),
    Key(
        "",
        "edit_question",
        "Edit",
        "edit the selected answer's question and resend it in place (e on an answer)",
        title="Edit question",
    ),
    Key("", "delete_chat", "Delete", "delete this chat from RAG_HOME/chats", title="Delete chat"),
    Key(
        "",
        "search_chats",
        "Search",
        "find a saved chat by the words of its questions and answers",
        title="Search saved chats",
    ),
]

# Keys bound by a widget (documented in the help; the widgets read their key names from here).
SEND_KEYS = ("enter",)
# Ctrl+J is a line feed in every terminal. Shift+Enter and Alt+Enter only arrive as such where the
# terminal reports modifiers (kitty protocol: shift+enter / alt+enter; xterm modifyOtherKeys:
# Textual calls it shift+\r); elsewhere they arrive as a plain Enter, so they are not advertised.
NEWLINE_KEYS = ("ctrl+j", "shift+enter", "shift+\r", "alt+enter", "alt+\r")
# Tab and Shift+Tab from the input (the App's focus ring: input -> answer -> its sources).
FOCUS_KEYS = {"tab": "focus_next", "shift+tab": "focus_previous"}
# The input scrolls the chat with these (TextArea would move its cursor by a page).
CHAT_SCROLL_KEYS = {"pageup": "page_up", "pagedown": "page_down"}
# On an answer (tui.widgets.conversation.AnswerView): key names, the App's action. Any other
# printable key goes to the input.
ANSWER_BINDINGS = [
    ("c", "app.copy_answer"),
    ("e", "app.edit_question"),
    ("up,k", "app.answer(-1)"),
    ("down,j", "app.answer(1)"),
    ("G,end", "app.latest_answer"),
    ("g,home", "app.first_answer"),
    ("m,i,escape", "app.focus_input"),
]
WIDGET_KEYS = [
    ("Enter", "send the question (while an answer is written it waits in a visible queue)"),
    ("Ctrl+J", "new line in the question (any terminal; Shift+Enter too where the terminal reports it)"),
    ("Up, Down", "earlier questions, at the first or last line of the input"),
    ("PgUp, PgDn", "scroll the chat, from the input too"),
    ("Tab, Shift+Tab", "from the input: the selected (latest) answer, its sources, back to the input"),
    ("Up, Down on an answer", "the answer before or after it (also k, j); g / G the first / the latest answer"),
    ("m, Esc on an answer", "back to the input; any other letter typed goes to the input too"),
    ("Enter on a source", "the paper's full abstract"),
    ("c on an answer", "copy it with its references"),
    ("e on an answer", "edit its question in the input; Enter resends it in place (Esc stops editing)"),
    ("Ctrl+P", "all commands (ingest a file, export, rename, delete, search chats)"),
    ("Ctrl+Q", "quit"),
]


# The footer shows these first: on a narrow screen (60 columns, an answer running) the others are cut.
FOOTER_FIRST = ("cancel", "why", "toggle_sources", "help")


def bindings() -> list[Binding | tuple[str, str] | tuple[str, str, str]]:
    # One Binding per key, so that the footer shows only the first key of each action.
    ordered = sorted(APP_KEYS, key=lambda k: FOOTER_FIRST.index(k.action) if k.action in FOOTER_FIRST else 99)
    out: list[Binding | tuple[str, str] | tuple[str, str, str]] = [
        Binding(key, k.action, k.label, show=k.footer and i == 0, priority=k.priority)
        for k in ordered
        for i, key in enumerate(k.keys.split(","))
    ]
    out.append(Binding("question_mark", "help", "Keys", show=False))  # from the answers and sources (not typing)
    return out


def help_rows() -> list[tuple[str, str]]:
    rows = [(k.display, k.help) for k in APP_KEYS]
    rows += WIDGET_KEYS
    return rows


def key_of(action: str) -> str:
    """How the help writes the key of an action ("" if it has none)."""
    return next((k.display for k in APP_KEYS if k.action == action), "")
