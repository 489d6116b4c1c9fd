"""The terminal chat (`rag chat`): a Textual app over `rag.Assistant`."""

from __future__ import annotations

__all__ = ["make_app"]


def make_app(*args, **kwargs):
    """See `tui.app.make_app` (imported lazily: Textual is only needed for the chat)."""
    from .app import make_app as _make_app

    return _make_app(*args, **kwargs)
