"""The smaller trust issues of real use: questions without words, ingest reports that tell the whole
story (time, replaced duplicates, unreadable files, link loops), reading large files without holding
them twice, progress bars only for work that happens, and an answer cut at the token limit."""

from __future__ import annotations

import io
import json
import os
import sys
import tracemalloc

import pytest
from click.testing import CliRunner

from rag import Assistant, CorpusError, EmptyQuestionError, Settings
from rag.cli import cli, progress_bar
from rag.corpus.readers import read_file
from rag.testing import HashEmbedder, ScriptedGenerator

ABSTRACT = "We measure something that matters with a method that improves on two baselines by a clear margin."
QUESTION = "How much does the logical error rate fall?"


@pytest.fixture
def assistant_for(rag_home, small_corpus):
    made = []

    def build(generator=None, **settings) -> Assistant:
        a = Assistant(
            Settings(home=rag_home, min_relevance=0.0, **settings), embedder=HashEmbedder(), generator=generator
        )
        a.ingest([small_corpus])
        made.append(a)
        return a

    yield build
    for a in made:
        a.close()


# --- questions --------------------------------------------------------------------------------------
@pytest.mark.parametrize("question", ["?!?! ... ;;", "???", "— … ¿?", "🙂🙂", "___"])
def test_a_question_without_words_is_an_input_error_and_never_reaches_the_model(assistant_for, question):
    generator = ScriptedGenerator(["anything [1]."])
    a = assistant_for(generator)
    with pytest.raises(EmptyQuestionError, match="no words"):
        a.ask(question)
    assert generator.calls == []


def test_the_cli_refuses_it_in_one_line(rag_home):
    result = CliRunner().invoke(cli, ["--home", str(rag_home), "ask", "?!?! ... ;;"], obj={})
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: the question has no words (only punctuation or symbols); type a question about the papers"
    )


# --- the answer at the token limit ----------------------------------------------------------------------
def test_a_sentence_cut_at_the_token_limit_is_not_shown_as_a_verified_claim(assistant_for):
    # 11 words, then the model runs out of its 16 tokens in the middle of a supported sentence.
    reply = (
        "The logical error rate falls by a factor of 2.1 [1]. "
        "The code distance grows from three to five when the logical error rate falls by 2.1."
    )
    a = assistant_for(ScriptedGenerator([reply]), max_answer_tokens=16)
    answer = a.ask(QUESTION)
    assert answer.completion_tokens == 16
    assert answer.text == "The logical error rate falls by a factor of 2.1 [1]."
    assert answer.dropped_sentences == ["The code distance grows from"]


def test_a_finished_last_sentence_at_the_token_limit_stays(assistant_for):
    reply = "The logical error rate falls by a factor of 2.1 [1]. The code distance grows from three to five."
    a = assistant_for(ScriptedGenerator([reply]), max_answer_tokens=19)
    answer = a.ask(QUESTION)
    assert answer.completion_tokens == 19 and answer.text.endswith("grows from three to five [1].")


# --- ingest reports ---------------------------------------------------------------------------------------
def test_ingest_seconds_cover_reading_the_files(rag_home, small_corpus, monkeypatch):
    import time

    import rag.ingest.from_files

    real = rag.ingest.from_files.stream_corpus

    def slow_read(paths, *args):
        time.sleep(0.6)
        yield from real(paths, *args)

    monkeypatch.setattr(rag.ingest.from_files, "stream_corpus", slow_read)
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    try:
        assert a.ingest([small_corpus]).seconds >= 0.6
    finally:
        a.close()


def test_a_replaced_duplicate_title_is_a_line_of_the_report(rag_home, tmp_path, hashed_assistants):
    old, new = tmp_path / "a-old.jsonl", tmp_path / "b-new.jsonl"
    old.write_text(json.dumps({"title": "One Title", "abstract": ABSTRACT}) + "\n")
    new.write_text("\n" + json.dumps({"title": "One  title", "abstract": ABSTRACT + " And more."}) + "\n")
    result = CliRunner().invoke(cli, ["--home", str(rag_home), "ingest", str(tmp_path)], obj={})
    assert result.exit_code == 0, result.output
    assert f"warning: {old}:1: replaced by {new}:2 (the same title with another abstract)" in result.stderr
    assert "2 files, 2 papers read, 1 unique: 1 added" in result.stderr


def test_unreadable_files_are_counted_and_reported(rag_home, small_corpus, monkeypatch):
    import builtins

    import rag.corpus.readers

    locked = small_corpus / "locked.jsonl"
    locked.write_text(json.dumps({"title": "Locked", "abstract": ABSTRACT}) + "\n")

    def guarded_open(path, *args, **kwargs):  # root reads any file: simulate the permission error
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(rag.corpus.readers, "open", guarded_open, raising=False)
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    try:
        report = a.ingest([small_corpus])
    finally:
        a.close()
    assert report.files == 2 and report.added == 5
    assert report.problems == [f"{locked}: cannot read: Permission denied"]


def test_a_symlink_loop_is_named_as_one(rag_home, small_corpus, tmp_path):
    loop = tmp_path / "loop.jsonl"
    os.symlink(loop, loop)
    with pytest.raises(CorpusError, match=r"loop.jsonl: symbolic link loop \(Too many levels of symbolic links\)"):
        Assistant(Settings(home=rag_home), embedder=HashEmbedder()).ingest([loop])
    # inside a folder: one problem each, counted with the files, the rest ingested
    os.symlink(small_corpus / "loop2.jsonl", small_corpus / "loop2.jsonl")
    os.symlink(tmp_path / "gone.csv", small_corpus / "dangling.csv")
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    try:
        report = a.ingest([small_corpus])
    finally:
        a.close()
    assert report.files == 3 and report.added == 5
    assert sorted(report.problems) == [
        f"{small_corpus / 'dangling.csv'}: broken symbolic link (to {tmp_path / 'gone.csv'}); fix or remove the link",
        f"{small_corpus / 'loop2.jsonl'}: symbolic link loop (Too many levels of symbolic links); fix or remove the link",
    ]


# --- reading large files -------------------------------------------------------------------------------------
def test_json_lines_are_read_without_holding_the_file_twice(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1000):  # abstracts of ~3 kB: the text, not the objects around it, is what weighs
            f.write(
                json.dumps({"title": f"Paper {i} on something", "abstract": f"{ABSTRACT} Number {i}. " * 30}) + "\n"
            )
    size = path.stat().st_size
    tracemalloc.start()
    result = read_file(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(result.papers) == 1000
    # The papers themselves take ~1.4x the file; reading the bytes, the text and its lines whole peaked at ~4.4x.
    assert peak < 2 * size, peak / size


def test_json_lines_report_bad_utf8_at_its_line_and_read_the_rest(tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = json.dumps({"title": "Good One", "abstract": ABSTRACT}).encode()
    path.write_bytes(
        b"\xef\xbb\xbf" + good + b"\r\n" + b'{"title": "Caf\xe9"}\n' + good.replace(b"One", b"Two") + b"\n"
    )
    result = read_file(path)
    assert [p.title for p in result.papers] == ["Good One", "Good Two"]
    assert result.problems == [f"{path}:2: not UTF-8 text (convert it with iconv -t UTF-8)"]


# --- progress ------------------------------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_is_drawn_only_when_there_is_progress(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress_bar("Assembling model (once)") as update:
        assert update is not None  # the model was already assembled: nobody calls it
    assert terminal.getvalue() == ""
    with progress_bar("Assembling model (once)") as update:
        update("assemble", 10, 100)
    assert "Assembling model (once)" in terminal.getvalue()
