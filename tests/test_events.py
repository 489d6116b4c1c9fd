"""`AnswerEvent`'s one wire form, shared by `rag serve`, its client and `rag ask --events`."""

from __future__ import annotations

import pytest

from rag.types import EVENT_KINDS, Answer, AnswerEvent, Citation


def _answer() -> Answer:
    citation = Citation(key=1, paper_id="p", title="A Paper", text="It works.", sentences=["It works."])
    return Answer(question="Does it work?", text="It works [1].", citations=[citation])


def test_every_event_goes_over_the_wire_and_comes_back_the_same():
    events = [
        AnswerEvent("token", "It", 0.1234),
        AnswerEvent("sentence", "It works [1].", 0.5, pending=" And"),
        AnswerEvent("dropped", "It flies [1].", 0.6, reason="not in the passage"),
        AnswerEvent("done", "It works [1].", 0.7, answer=_answer()),
    ]
    assert [e.kind for e in events] == list(EVENT_KINDS)
    for event in events:
        back = AnswerEvent.from_dict(event.to_dict())
        assert back == AnswerEvent(event.kind, event.text, round(event.t, 3), event.reason, event.answer, event.pending)


def test_the_wire_form_leaves_out_what_is_not_set_and_reports_the_answer_on_request():
    assert AnswerEvent("token", "It", 0.1234).to_dict() == {"kind": "token", "text": "It", "t": 0.123}
    done = AnswerEvent("done", "It works [1].", 0.7, answer=_answer())
    assert "passages" in done.to_dict()["answer"]  # the whole Answer (the server's form)
    report = done.to_dict(report=True)["answer"]  # the CLI's form: the report `rag ask --json` prints
    assert "passages" not in report and report["answer"] == "It works [1]."


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "thinking", "text": "", "t": 0},
        {"kind": "token", "t": 0},
        {"kind": "done", "text": "", "t": 0, "answer": {}},
    ],
)
def test_a_malformed_event_is_refused(data):
    with pytest.raises((KeyError, ValueError)):
        AnswerEvent.from_dict(data)
