"""Terminal escapes in corpus text and model output: stored clean at ingest, removed again at every
output to a terminal (CLI, chat); `--json` escapes them. The hostile records are in
tests/data/hostile.jsonl (kind escape/* and url/*)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from rag import Assistant, Paper, Settings
from rag.cli import cli
from rag.corpus.readers import read_file
from rag.ingest.pipeline import Ingester
from rag.safety import has_controls
from rag.testing import HashEmbedder, ScriptedGenerator

HOSTILE = Path(__file__).parent / "data" / "hostile.jsonl"
RECORDS = [json.loads(line) for line in HOSTILE.read_text(encoding="utf-8").splitlines()]
# What a terminal must never receive from corpus or model text (our own SGR styling aside).
FOREIGN = re.compile(
    r"\x1b\]|\x1b\[(?![0-9;]*m)|\x1b\[(?:31|5)m|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)
DIRTY_TITLE = "\x1b]0;pwned\x07Graph Neural Networks for Traffic Forecasting \x1b[2J"
DIRTY_ABSTRACT = (
    "We forecast traffic speed on road networks with a graph neural network over loop detectors \x1b[2J and "
    "\x1b]8;;http://evil.example\x1b\\reduce the error\x1b]8;;\x1b\\ on highway benchmarks by twelve percent \u202e."
)


def test_reading_stores_clean_text_and_counts_the_records_it_touched():
    result = read_file(HOSTILE)
    assert result.problems == [] and len(result.papers) == len(RECORDS)
    for paper in result.papers:
        fields = [paper.title, paper.abstract, paper.url or "", *paper.authors, *paper.categories]
        assert not any(has_controls(f) for f in fields), paper.title
    assert result.sanitized == sum(r["kind"].startswith("escape/") for r in RECORDS) == 4
    titles = {p.title for p in result.papers}
    assert {r["clean_title"] for r in RECORDS if "clean_title" in r} <= titles
    osc8 = next(p for p in result.papers if p.title == "Sparse Attention for Long Protein Sequences")
    assert "click here for the code" in osc8.abstract and "evil.example" not in osc8.abstract  # the hidden target
    # URLs and markup written as text stay text
    assert any("[our site](http://evil.example/steal)" in p.abstract for p in result.papers)
    assert "[bold red]Styled[/] Titles Break Markup Parsers" in titles


def test_ingest_report_says_how_many_records_were_touched(rag_home):
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    try:
        report = a.ingest([HOSTILE])
        assert report.sanitized == 4 and report.added == len(RECORDS)
        stored = a.get_papers(a.index.catalog.paper_ids())
        assert not any(has_controls(p.title + p.abstract) for p in stored.values())
    finally:
        a.close()
    result = CliRunner().invoke(
        cli, ["--home", str(rag_home), "ingest", "--rebuild", str(HOSTILE)], obj={"embedder": HashEmbedder()}
    )
    assert result.exit_code == 0, result.output
    assert "4 papers held control characters or terminal escape sequences" in result.stderr


@pytest.fixture
def dirty_home(rag_home, monkeypatch):
    """An index holding a paper with escapes, as one built before ingest cleaned text would."""
    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder())
    Ingester(a.index).ingest([Paper(title=DIRTY_TITLE, abstract=DIRTY_ABSTRACT, source="\x1b]0;file\x07old.jsonl")])
    a.close()
    return rag_home


def _invoke(home, *args):
    return CliRunner().invoke(
        cli, ["--home", str(home), *args], obj={"embedder": HashEmbedder()}, color=True, catch_exceptions=False
    )


def test_search_prints_no_escape_from_the_index(dirty_home):
    result = _invoke(dirty_home, "search", "traffic forecasting graph")
    assert result.exit_code == 0
    assert "Graph Neural Networks for Traffic Forecasting" in result.stdout
    assert not FOREIGN.search(result.stdout), repr(result.stdout)
    raw = _invoke(dirty_home, "search", "traffic forecasting graph", "--json").stdout
    assert "\x1b" not in raw and "\u202e" not in raw
    assert json.loads(raw)["hits"][0]["title"] == DIRTY_TITLE  # --json: escaped, not altered


def test_ask_prints_no_escape_from_the_model_or_the_references(dirty_home, monkeypatch):
    # The model repeats the passage's escapes and adds its own (an OSC 8 link, a title change).
    reply = (
        "Graph neural networks over loop detectors \x1b]8;;http://evil.example\x1b\\reduce the error\x1b]8;;\x1b\\ "
        "on highway benchmarks by twelve percent \x1b]0;pwned\x07\x1b[2J [1]."
    )
    monkeypatch.setattr("rag.backends.loaded.make_generator", lambda settings, **kwargs: ScriptedGenerator([reply]))
    result = _invoke(dirty_home, "ask", "How much do graph neural networks reduce the traffic forecasting error?")
    assert result.exit_code == 0, result.output
    assert "reduce the error on highway benchmarks by twelve percent [1]." in result.stdout
    assert "References:\n[1] Graph Neural Networks for Traffic Forecasting" in result.stdout
    assert not FOREIGN.search(result.stdout + result.stderr), repr(result.stdout)
    raw = _invoke(
        dirty_home, "ask", "How much do graph neural networks reduce the traffic forecasting error?", "--json"
    ).stdout
    assert "\x1b" not in raw and "\x07" not in raw and "\u202e" not in raw
    data = json.loads(raw)
    assert not has_controls(data["answer"])  # the model's escapes never reach the Answer


def test_an_error_message_naming_a_hostile_path_is_printed_clean(rag_home, tmp_path):
    result = _invoke(rag_home, "ingest", str(tmp_path / "\x1b]0;pwned\x07missing.jsonl"))
    assert result.exit_code == 1 and "missing.jsonl: no such file" in result.stderr
    assert not FOREIGN.search(result.stderr)


# --- the chat ------------------------------------------------------------------------------------------
async def test_chat_shows_corpus_and_model_text_without_escapes_links_or_markup(dirty_home):
    from textual.content import Content

    from tui.app import make_app
    from tui.widgets import AnswerView, PaperScreen, SourceCard

    reply = (
        "Graph neural networks over loop detectors reduce the error on highway benchmarks by twelve percent "
        "\x1b]0;pwned\x07 [1]. The [code for reducing the error](http://evil.example/steal) is on highway "
        "benchmarks [1].\n\n[1]: http://evil.example/ref"
    )
    a = Assistant(Settings(home=dirty_home), embedder=HashEmbedder(), generator=ScriptedGenerator([reply]))
    app = make_app(assistant=a)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await app.workers.wait_for_complete()
            app.prompt.load_text("How much do graph neural networks reduce the traffic forecasting error?")
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            [view] = app.query(AnswerView)
            assert view.answer is not None and not view.answer.refused, view.answer
            assert not has_controls(view.text)
            # A link the passage does not hold is not shown at all (rag.answer.citations drops its sentence).
            assert "evil.example" not in view.text
            assert any("evil.example" in d.reason for d in view.answer.dropped), view.answer.dropped
            # The Markdown keeps "[see code](...)" as typed: no link hides its target, [1] stays a marker.
            rendered = [w._content for w in view.markdown.query("MarkdownParagraph")]
            assert rendered and all(isinstance(c, Content) for c in rendered)
            assert not any("@click" in str(span.style) for c in rendered for span in c.spans)
            assert "[1]" in "".join(c.plain for c in rendered)
            card = app.query_one(SourceCard)
            plain = card.visual.plain if hasattr(card.visual, "plain") else str(card.render())
            assert "Graph Neural Networks for Traffic Forecasting" in plain and not has_controls(plain)
            card.focus()
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, PaperScreen)
            shown = "".join(str(w.render()) for w in app.screen.query("Static, Label"))
            assert "reduce the error" in shown and not has_controls(shown)
    finally:
        a.close()


async def test_chat_notifications_do_not_interpret_markup(rag_home):
    from tui.app import Problem, make_app

    a = Assistant(Settings(home=rag_home), embedder=HashEmbedder(), generator=ScriptedGenerator(["x"]))
    app = make_app(assistant=a)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            await app.workers.wait_for_complete()
            app.post_message(Problem("bad record: '[link=http://evil.example]click[/link] [/]'", "Index"))
            await pilot.pause()
            await pilot.pause()
            [note] = [n for n in app._notifications if "bad record" in n.message]
            assert note.markup is False
    finally:
        a.close()
