"""Problems of the data dir itself (read-only, no space) told apart from damage to what is in it.

A full disk or a read-only mount surfaces as whatever the failing library says (SQLite's "attempt
to write a readonly database", Chroma's "database or disk is full", an OSError): naming it as
damage would send the user to a destructive fix for a problem that deleting cannot solve.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from rag.errors import DataDirError
from rag.store.catalog_base import damaged

# Bytes on disk per chunk in the embedded store (catalog + Chroma + BM25; BENCHMARKS "Scale": ~8 kB).
BYTES_PER_CHUNK = 8_000
LOW_SPACE = 1 << 20  # below this much free space, a failing write is taken to be the full disk's fault
_NO_SPACE = ("no space left", "disk is full", "database or disk is full", "disk quota exceeded")
_READ_ONLY = ("read-only file system", "readonly database", "attempt to write a readonly", "permission denied")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and the ones it was raised from or during."""
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in out):
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _messages(exc: BaseException) -> str:
    return " ".join(str(e) for e in _chain(exc)).lower()


def _errnos(exc: BaseException) -> set[int]:
    return {e.errno for e in _chain(exc) if isinstance(e, OSError) and e.errno is not None}


def free_bytes(path: Path) -> int | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def no_space(path: Path, needed: int | None = None) -> DataDirError:
    free = free_bytes(path)
    have = f"{free / 1e6:.1f} MB free" if free is not None else "no space left"
    need = f"; about {needed / 1e6:.0f} MB more are needed" if needed else ""
    return DataDirError(
        f"no space left on the disk of {path} ({have}{need}); nothing indexed was lost: "
        "free some space (or point RAG_HOME at a bigger disk) and run the command again"
    )


def read_only(path: Path) -> DataDirError:
    return DataDirError(
        f"the data dir {path} is read-only (the index there is not damaged); make it writable "
        "or point RAG_HOME at a writable dir"
    )


def storage_problem(exc: BaseException, path: Path, needed: int | None = None) -> DataDirError | None:
    """A `DataDirError` if `exc` comes from a full disk or a read-only data dir, else None.

    Besides what the error says, the disk itself is looked at: SQLite reports a full disk as a
    plain "disk I/O error" when its shared-memory file cannot grow.
    """
    codes, text = _errnos(exc), _messages(exc)
    if codes & {errno.ENOSPC, errno.EDQUOT} or any(m in text for m in _NO_SPACE):
        return no_space(path, needed)
    if codes & {errno.EROFS, errno.EACCES, errno.EPERM} or any(m in text for m in _READ_ONLY):
        return read_only(path)
    if codes - {errno.EIO}:
        return None  # the system said what went wrong, and it is neither of these
    free = free_bytes(path)
    if free is not None and free < LOW_SPACE:
        return no_space(path, needed)
    if not writable(path):
        return read_only(path)
    return None


def writable(path: Path) -> bool:
    """Can files be created in `path` (or in its nearest existing parent)?"""
    for candidate in (path, *path.parents):
        if candidate.exists():
            probe = candidate / f".rag-write-probe-{id(path)}"
            try:
                probe.touch()
                probe.unlink()
                return True
            except OSError:
                return False
    return False


@contextlib.contextmanager
def catalog_errors(path: Path) -> Iterator[None]:
    """SQLite errors from a damaged page that the open-time checks did not reach become one
    `IndexCorruptError` that says what to do (for the CLI and the chat alike); a full or read-only
    disk is named as such."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise
        raise storage_problem(exc, path.parent) or damaged(path, str(exc)) from exc
