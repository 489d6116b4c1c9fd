"""Corpus readers: files and folders -> `Paper`s, by format (page dumps, JSON Lines, arXiv metadata,
BibTeX, CSV), whole or as a stream.

Readers never raise on bad records: each rejected record becomes a problem `file:line: reason`
and the rest of the file is still read. Only a path that does not exist is an error.
"""

from __future__ import annotations

import codecs
import errno
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from rag.corpus.json_records import iter_jsonl_stream, read_json, read_jsonl
from rag.corpus.page_dumps import read_page_dump
from rag.corpus.records import ReadResult
from rag.corpus.tables import read_bibtex, read_csv
from rag.errors import CorpusError
from rag.settings import BUNDLED_CORPUS
from rag.types import Paper

SUFFIXES = {".txt", ".jsonl", ".json", ".ndjson", ".bib", ".csv"}
BUNDLED_PREFIX = "bundled:"
_READERS = {
    ".txt": read_page_dump,
    ".jsonl": read_jsonl,
    ".ndjson": read_jsonl,
    ".json": read_json,
    ".bib": read_bibtex,
    ".csv": read_csv,
}


def _is_json_lines(f: BinaryIO, suffix: str) -> bool:
    """JSON Lines, or a .json file that is not one array (the arXiv snapshot: one object a line)?"""
    if suffix != ".json":
        return suffix in (".jsonl", ".ndjson")
    start = f.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    f.seek(0)
    return not start.startswith(b"[") and bool(start)


def read_file(path: Path, source: str | None = None) -> ReadResult:
    """Read one corpus file; problems (not exceptions) for anything that cannot be used.

    JSON Lines files are read line by line; the other formats are read whole (they hold one
    structure: an array, BibTeX entries, CSV with multi-line fields, page dumps).
    """
    result = ReadResult()
    for piece in iter_file(path, source):
        result.extend(piece)
    return result


def iter_file(path: Path, source: str | None = None, papers_per_piece: int = 1000) -> Iterator[ReadResult]:
    """`read_file` in pieces: a JSON Lines file (the arXiv snapshot) in pieces of at most
    `papers_per_piece` papers, read as they are used; any other file in one piece. Each piece's
    `done` is the share of the file read."""
    source = source or str(path)
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        yield ReadResult(problems=[f"{source}: unsupported file type (use {', '.join(sorted(SUFFIXES))})"], files=1)
        return
    try:
        with open(path, "rb") as f:
            if _is_json_lines(f, suffix):
                size = max(1, os.fstat(f.fileno()).st_size)
                for piece in iter_jsonl_stream(f, source, papers_per_piece):
                    piece.done = min(1.0, f.tell() / size)
                    yield piece
                return
            data = f.read()
    except OSError as exc:
        yield ReadResult(problems=[f"{source}: cannot read: {exc.strerror or exc}"], files=1)
        return
    yield _read_whole(data, reader, source)


def _read_whole(data: bytes, reader: Callable[[str, str], ReadResult], source: str) -> ReadResult:
    if not data.strip():
        return ReadResult(problems=[f"{source}: empty file"], files=1)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return ReadResult(problems=[f"{source}:{line}: not UTF-8 text (convert it with iconv -t UTF-8)"], files=1)
    result = reader(text, source)
    if not result.papers and not result.problems:
        result.problems.append(f"{source}: no papers found")
    return result


def _unusable(path: Path) -> str | None:
    """Why a path given or found cannot be read as it stands (None: it can be tried)."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path}: symbolic link loop ({exc.strerror}); fix or remove the link"
        if path.is_symlink():
            return f"{path}: broken symbolic link (to {os.readlink(path)}); fix or remove the link"
        if exc.errno == errno.ENOENT:
            return f"{path}: no such file or directory"
        return f"{path}: cannot read: {exc.strerror}"
    return None


def _walk(folder: Path, result: ReadResult) -> Iterator[Path]:
    """Corpus files under `folder`, sorted; unreadable folders and broken or looping links are
    reported (and counted as files when they look like corpus files) instead of being skipped."""

    def unreadable(exc: OSError) -> None:
        result.problems.append(f"{exc.filename}: cannot read the folder: {exc.strerror}")

    found = []
    for root, _, names in os.walk(folder, onerror=unreadable):
        for name in names:
            path = Path(root) / name
            if path.suffix.lower() not in SUFFIXES:
                continue
            problem = _unusable(path)
            if problem is None and path.is_file():
                found.append(path)
            elif problem is not None:
                result.problems.append(problem)
                result.files += 1
    yield from sorted(found)


def read_corpus(paths: Iterable[Path | str] | None = None) -> ReadResult:
    """Read files and folders (None: the bundled seed corpus).

    A path that was given and cannot be used at all (missing, a link loop) is a CorpusError; what
    a folder holds that cannot be read is a problem of the result.
    """
    result = ReadResult()
    for piece in stream_corpus(paths):
        result.extend(piece)
    return result


def stream_corpus(paths: Iterable[Path | str] | None = None, papers_per_piece: int = 1000) -> Iterator[ReadResult]:
    """`read_corpus` in pieces, read as they are used: JSON Lines files in pieces of at most
    `papers_per_piece` papers, other files one piece each. Each piece's `done` is the share of all
    the files' bytes read so far (for progress estimates). The paths are checked before the first
    piece (a CorpusError as for `read_corpus`)."""
    files: list[tuple[Path, str | None]] = []
    if paths is None:
        files = [(path, BUNDLED_PREFIX + path.name) for path in sorted(BUNDLED_CORPUS.glob("*.txt"))]
        return _stream_files([], files, papers_per_piece)
    given = [Path(p) for p in paths]
    for path in given:
        problem = _unusable(path)
        if problem is not None:
            raise CorpusError(problem)
    found = ReadResult(done=0.0)  # the problems met while looking for files
    for path in given:
        files += [(file, None) for file in (_walk(path, found) if path.is_dir() else [path])]
    return _stream_files([found], files, papers_per_piece)


def _stream_files(
    first: list[ReadResult], files: list[tuple[Path, str | None]], papers_per_piece: int
) -> Iterator[ReadResult]:
    sizes = []
    for path, _ in files:
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            sizes.append(0)
    total = max(1, sum(sizes))
    before = 0
    yield from first
    for (path, source), size in zip(files, sizes):
        for piece in iter_file(path, source, papers_per_piece):
            piece.done = min(1.0, (before + piece.done * size) / total)
            yield piece
        before += size


def dedupe(
    papers: Iterable[Paper], where: Sequence[str] | None = None, problems: list[str] | None = None
) -> list[Paper]:
    """One paper per normalised title, remembering every source it was seen in.

    When one title comes with two different abstracts, the last one read wins (a newer file
    replaces an older version of the same paper); with `where` (each paper's `file:line`) and
    `problems`, the replaced record is reported there.

    The papers are not copied (a large corpus would be held twice): the paper kept for a title
    gets the merged `sources` list.
    """
    by_title: dict[str, tuple[Paper, int]] = {}
    for index, paper in enumerate(papers):
        key = paper.title_key
        seen = by_title.get(key)
        if seen is None:
            by_title[key] = (paper, index)
            continue
        kept, first = seen
        sources = kept.sources + [s for s in paper.sources if s not in kept.sources]
        if kept.paper_id != paper.paper_id:
            if where is not None and problems is not None:
                problems.append(f"{where[first]}: replaced by {where[index]} (the same title with another abstract)")
            kept, first = paper, index
        kept.sources = sources  # a new list: the one it replaces may be shared with the reader's copy
        by_title[key] = (kept, first)
    return [paper for paper, _ in by_title.values()]
