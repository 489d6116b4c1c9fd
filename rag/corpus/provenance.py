"""Which corpus a data dir's index was built from (`HOME/corpus.json`), so that a lost index is
reported as lost instead of being silently replaced by the bundled corpus.

The first search in a data dir that never held an index indexes the bundled corpus (the
zero-setup first run). Once an index was built, its sources are recorded here after every ingest;
if the catalog is later deleted or emptied, searches say which files to ingest again rather than
mixing the bundled papers into a user's own corpus.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Iterable
from pathlib import Path

from rag.corpus.readers import BUNDLED_PREFIX
from rag.datafiles import IndexFiles
from rag.errors import IndexMissingError

MARKER = "corpus.json"
BUNDLED = "bundled"  # the sources of the bundled corpus, as one entry
SHOWN_FILES = 3


def corpus_sources(sources: Iterable[str]) -> list[str]:
    """Paper sources as recorded: the bundled corpus as one entry, files as absolute paths."""
    out = set()
    for source in sources:
        if source.startswith(BUNDLED_PREFIX):
            out.add(BUNDLED)
        elif source:
            out.add(str(Path(source).resolve()))
    return sorted(out)


class Provenance:
    """The record of what a data dir's index was built from."""

    def __init__(self, home: Path, index_dir: Path):
        self.path = home / MARKER
        self.index_dir = index_dir

    def sources(self) -> list[str] | None:
        """The recorded sources; None if no index was ever recorded here ([] if the record is unreadable)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return []
        sources = data.get("sources") if isinstance(data, dict) else None
        return [s for s in sources if isinstance(s, str)] if isinstance(sources, list) else []

    def never_built(self) -> bool:
        """True for a data dir that never held an index: no record and no vectors or lexical index
        left (an index cut short before its first commit leaves those)."""
        if self.sources() is not None:
            return False
        files = IndexFiles(self.index_dir)
        return not any(path.exists() for path in (files.chroma, files.lexical))

    def record(self, sources: Iterable[str], *, replace: bool = False) -> None:
        """Add this ingest's sources to the record (`replace`: a rebuild starts it afresh)."""
        previous = [] if replace else (self.sources() or [])
        merged = sorted(set(previous) | set(corpus_sources(sources)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(
            json.dumps({"sources": merged, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1), encoding="utf-8"
        )
        os.replace(partial, self.path)

    def missing(self) -> IndexMissingError:
        """The error for a data dir whose index is gone: what it held and the command that rebuilds it."""
        sources = self.sources() or []
        files = [s for s in sources if s != BUNDLED]
        shown = " ".join(shlex.quote(f) for f in files[:SHOWN_FILES]) + (" ..." if len(files) > SHOWN_FILES else "")
        what = ", ".join(
            (["the bundled corpus"] if BUNDLED in sources else [])
            + ([f"{len(files)} file{'s' if len(files) != 1 else ''} ({shown})"] if files else [])
        )
        if files and BUNDLED in sources:
            todo = f"run `rag ingest --rebuild {shown}` and then `rag ingest` (the bundled corpus)"
        elif files:
            todo = f"run `rag ingest --rebuild {shown}`"
        elif BUNDLED in sources:
            todo = "run `rag ingest` to index the bundled corpus again"
        else:
            todo = "run `rag ingest PATH...` with the files it was built from (`rag ingest` alone: the bundled corpus)"
        held = f"; it held {what}" if what else ""
        return IndexMissingError(
            f"the index in {self.index_dir} is missing or empty{held}; {todo} (no other papers are added unasked)"
        )
