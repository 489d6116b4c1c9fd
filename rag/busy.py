"""One use of an `Assistant` at a time, and what that use is (a waiting caller is told what it waits for)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from rag.errors import Cancelled

POLL_S = 0.05  # how often a waiting caller checks whether it was cancelled


@dataclass
class Holding:
    label: str  # what a caller waiting for the Assistant is told it waits for ("an answer being written")


class Busy:
    """A lock with a label. Re-entrant in the thread that holds it, so a caller may hold it around several
    calls that each take it too. An answer's stream holds it without an owning thread: its steps may run
    in different threads (a server steps it from a pool), and none of those threads may enter meanwhile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # not an RLock: a stream's lock is released by whichever thread ends it
        self._holding: Holding | None = None
        self._owner: int | None = None

    @property
    def holder(self) -> str | None:
        """What holds it now (None: free)."""
        holding = self._holding
        return holding.label if holding is not None else None

    @contextmanager
    def hold(
        self,
        label: str,
        cancelled: Callable[[], bool] | None = None,
        on_wait: Callable[[str], object] | None = None,
        *,
        owned: bool = True,
        wait: bool = True,
    ) -> Iterator[Holding]:
        """Hold it as `label`. While another use holds it, wait, telling `on_wait` "waiting for <what>"
        whenever that changes, and raise `Cancelled` once `cancelled()` is true. `owned=False` (a
        stream): the thread that takes it does not own it, so it cannot enter again through it. `wait=False`:
        `Cancelled` at once if another use holds it."""
        me = threading.get_ident()
        if self._owner == me and self._holding is not None:  # held by this thread: a call inside a held use
            yield self._holding
            return
        if not wait and not self._lock.acquire(blocking=False):
            raise Cancelled(f"{self.holder or 'another use'} holds the assistant")
        told = None
        while wait and not self._lock.acquire(timeout=POLL_S):
            if cancelled is not None and cancelled():
                raise Cancelled(f"stopped while waiting for {self.holder or 'the assistant'}")
            holder = self.holder  # None: it is being let go
            if on_wait is not None and holder is not None and holder != told:
                on_wait(f"waiting for {holder}")
                told = holder
        holding = self._holding = Holding(label)
        self._owner = me if owned else None
        try:
            if cancelled is not None and cancelled():
                raise Cancelled(f"stopped before {label}")
            yield holding
        finally:
            self._holding = None
            self._owner = None
            self._lock.release()


class Usable(Protocol):
    def using(self, label: str) -> AbstractContextManager[object]: ...


U = TypeVar("U", bound=Usable)
P = ParamSpec("P")
R = TypeVar("R")


def held_as(label: str) -> Callable[[Callable[Concatenate[U, P], R]], Callable[Concatenate[U, P], R]]:
    """Run a method as one use of its object (`label`: what a waiting caller is told it waits for)."""

    def decorate(method: Callable[Concatenate[U, P], R]) -> Callable[Concatenate[U, P], R]:
        @functools.wraps(method)
        def wrapper(self: U, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with self.using(label):
                return method(self, *args, **kwargs)

        return wrapper

    return decorate
