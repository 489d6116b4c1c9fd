"""Who may run when between answers and a draft's preparation: an answer stops the preparation in flight
(between two of its steps) and no preparation starts while an answer is on its way."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Drafts:
    """The answers on their way and the one draft preparation in flight (the newest draft wins)."""

    def __init__(self) -> None:
        self._preparing = threading.Lock()
        self._cancel: threading.Event | None = None
        self._answers = 0
        self._counting = threading.Lock()  # `+=` on an attribute is not atomic (free-threaded Python)

    @property
    def answering(self) -> bool:
        return self._answers > 0

    @contextmanager
    def answer(self) -> Iterator[None]:
        """An answer on its way: the preparation in flight stops (this waits for at most one of its steps)."""
        with self._counting:
            self._answers += 1
        try:
            self._stop()
            yield
        finally:
            with self._counting:
                self._answers -= 1

    @contextmanager
    def preparation(self, cancel: threading.Event) -> Iterator[Callable[[], bool] | None]:
        """A draft's preparation, stopped by `cancel`, a newer draft or an answer: yields what tells it to
        give up, or None when an answer is on its way (then it must not start)."""
        if self.answering:
            yield None
            return
        self._stop()  # the newer draft wins
        with self._preparing:
            self._cancel = cancel
            try:
                yield None if self.answering else (lambda: cancel.is_set() or self.answering)
            finally:
                self._cancel = None

    def _stop(self) -> None:
        cancel = self._cancel
        if cancel is not None:
            cancel.set()
        with self._preparing:
            pass
