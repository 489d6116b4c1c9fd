"""One writer per data dir: a file lock held while an ingest writes, with who holds it."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rag.datafiles import DataDir
from rag.errors import IndexBusyError


class WriterLock:
    """`hold()` waits up to `timeout` seconds for another writer, then raises `IndexBusyError`."""

    def __init__(self, home: Path, timeout: float):
        self.home = home
        self.path = DataDir(home).ingest_lock
        self.info_path = DataDir(home).ingest_lock_info
        self.timeout = timeout

    def holder(self) -> str:
        """Who holds the lock, as written by the holder (best effort: it may be finishing right now)."""
        try:
            info = json.loads(self.info_path.read_text())
            started = time.strftime("%H:%M:%S", time.localtime(info["started"]))
            return f"another ingest (pid {info['pid']} on {info['host']}, started {started}: {info['command']})"
        except (OSError, ValueError, KeyError):
            return "another ingest"

    @contextlib.contextmanager
    def hold(self, on_wait: Callable[[str], object] | None = None) -> Iterator[None]:
        from filelock import FileLock, Timeout

        self.home.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = self.holder()
            if on_wait:
                on_wait(f"waiting for {holder} to finish (up to {self.timeout:.0f} s) ...")
            try:
                lock.acquire(timeout=self.timeout)
            except Timeout:
                raise IndexBusyError(
                    f"{holder} is still writing to {self.home}; let it finish (or stop it) and run this again"
                ) from None
        try:
            self.info_path.write_text(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "started": time.time(),
                        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
                    }
                )
            )
            yield
        finally:
            self.info_path.unlink(missing_ok=True)
            lock.release()

    @contextlib.contextmanager
    def try_hold(self) -> Iterator[bool]:
        """The lock if it is free right now (True), else nothing (False): for optional writes."""
        from filelock import FileLock, Timeout

        self.home.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
