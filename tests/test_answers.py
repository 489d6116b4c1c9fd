"""Answers: refusal gating, citation checks, follow-ups and streaming, with a scripted generator and
the model-free HashEmbedder for the logic, and the real models for the end-to-end path."""

from __future__ import annotations

import json

import pytest

from rag import Assistant, EmptyQuestionError, PromptError, Settings, UnknownModelError
from rag.answer.prompts import CANNOT_ANSWER, load_prompts
from rag.testing import ScriptedGenerator

QUANTUM_FACT = "The logical error rate falls by a factor of 2.1 when the code distance grows from three to five [1]."


def make(settings, embedder, small_corpus, replies) -> tuple[Assistant, ScriptedGenerator]:
    generator = ScriptedGenerator(replies)
    a = Assistant(settings, embedder=embedder, generator=generator)
    a.ingest([small_corpus])
    return a, generator


def test_cited_answer_maps_keys_to_retrieved_passages(settings, hash_embedder, small_corpus):
    a, gen = make(settings, hash_embedder, small_corpus, [QUANTUM_FACT])
    answer = a.ask("How much does the logical error rate of the surface code fall with distance?")
    assert not answer.refused
    assert answer.text == QUANTUM_FACT
    (citation,) = answer.citations
    assert citation.key == 1 and citation.title.startswith("Quantum Error Correction")
    assert "2.1" in citation.text
    # the passage the model saw is the one the citation carries
    user_prompt = gen.calls[0][-1]["content"]
    assert f"[1] {citation.title} — A. Fowler, B. Martinis; 2023\n{citation.text}" in user_prompt
    assert answer.timings.first_token_s is not None and answer.timings.total_s >= answer.timings.first_token_s
    assert answer.prompt_tokens > 0 and answer.completion_tokens > 0


def test_out_of_corpus_question_is_refused_without_calling_the_model(settings, hash_embedder, small_corpus):
    a, gen = make(settings, hash_embedder, small_corpus, ["The capital of France is Paris [1]."])
    answer = a.ask("What is the capital of France?")
    assert answer.refused and answer.text == CANNOT_ANSWER and answer.citations == []
    assert gen.calls == []


def test_answer_from_memory_with_a_citation_is_refused(settings, hash_embedder, small_corpus):
    a, gen = make(settings, hash_embedder, small_corpus, ["Surface codes were invented by Alexei Kitaev in 1997 [1]."])
    answer = a.ask("Who invented the surface code for quantum error correction?")
    assert len(gen.calls) == 1
    assert answer.refused and answer.citations == []
    assert answer.raw_text.startswith("Surface codes were invented")


def test_model_saying_it_cannot_answer_is_a_refusal(settings, hash_embedder, small_corpus):
    a, _ = make(settings, hash_embedder, small_corpus, [CANNOT_ANSWER])
    answer = a.ask("What decoder does the surface code experiment use?")
    assert answer.refused and answer.text == CANNOT_ANSWER


def test_unsupported_sentences_are_dropped_and_supported_ones_kept(settings, hash_embedder, small_corpus):
    reply = QUANTUM_FACT + " This result was later reproduced on 433 qubits [1]."
    a, _ = make(settings, hash_embedder, small_corpus, [reply])
    answer = a.ask("How much does the logical error rate fall with code distance?")
    assert answer.text == QUANTUM_FACT
    assert answer.dropped_sentences == ["This result was later reproduced on 433 qubits [1]."]


def test_stream_yields_verified_pieces_then_the_answer(settings, hash_embedder, small_corpus):
    reply = "Marine heatwaves are becoming more frequent [1]. Reefs with higher thermal variability were more resistant to bleaching [1]."
    a, _ = make(settings, hash_embedder, small_corpus, [reply])
    stream = a.stream("Which coral reefs resisted bleaching during marine heatwaves?")
    pieces = list(stream)
    assert len(pieces) == 2
    assert "".join(pieces) == stream.answer.text
    assert stream.answer.citations[0].title == "Coral Reef Bleaching under Marine Heatwaves"


def test_follow_up_refers_to_the_conversations_paper_without_a_model_call(settings, hash_embedder, small_corpus):
    replies = [
        "Mixture-of-experts layers route each token to a few expert feed-forward networks [1].",
        "The sparse language model uses 64 experts with top-2 routing [1].",
    ]
    a, gen = make(settings, hash_embedder, small_corpus, replies)
    first = a.ask("What is a sparse mixture-of-experts language model?")
    follow = a.ask("How many experts do they train?", history=[first])
    # "they" is resolved to the cited paper: its name replaces the pronoun, and no rewrite call is made
    assert len(gen.calls) == 2
    assert "they" not in follow.standalone_question.split()
    assert "Sparse Mixture-of-Experts Language Models at Low Cost" in follow.standalone_question
    assert f"Question: {follow.standalone_question}" in gen.calls[1][-1]["content"]
    assert not follow.refused and "64 experts" in follow.text
    assert follow.citations[0].title == "Sparse Mixture-of-Experts Language Models at Low Cost"


def test_a_self_contained_question_in_a_conversation_is_searched_as_asked(settings, hash_embedder, small_corpus):
    replies = [
        "Mixture-of-experts layers route each token to a few expert feed-forward networks [1].",
        "Marine heatwaves are becoming more frequent and intense [1].",
    ]
    a, gen = make(settings, hash_embedder, small_corpus, replies)
    first = a.ask("What is a sparse mixture-of-experts language model?")
    question = "Are marine heatwaves becoming more frequent for coral reefs?"
    follow = a.ask(question, history=[first])
    assert follow.standalone_question == question and len(gen.calls) == 2
    assert follow.citations[0].title == "Coral Reef Bleaching under Marine Heatwaves"


def test_a_refused_answer_never_becomes_the_topic(settings, hash_embedder, small_corpus):
    replies = [
        "Mixture-of-experts layers route each token to a few expert feed-forward networks [1].",
        "Surface codes were invented by Alexei Kitaev in 1997 [1].",
        "The sparse language model uses 64 experts with top-2 routing [1].",
    ]
    a, _ = make(settings, hash_embedder, small_corpus, replies)
    first = a.ask("What is a sparse mixture-of-experts language model?")
    refused = a.ask("Who invented the surface code for quantum error correction?", history=[first])
    assert refused.refused
    follow = a.ask("How many experts do they train?", history=[first, refused])
    assert "Sparse Mixture-of-Experts" in follow.standalone_question
    assert follow.citations[0].title == "Sparse Mixture-of-Experts Language Models at Low Cost"


def test_empty_and_huge_questions(settings, hash_embedder, small_corpus):
    a, _gen = make(settings, hash_embedder, small_corpus, [QUANTUM_FACT])
    with pytest.raises(EmptyQuestionError):
        a.ask(" \n\t ")
    answer = a.ask("surface code logical error rate " * 4000)  # ~130 kB
    assert answer.notices and "cut" in answer.notices[0]
    assert len(answer.question) <= 2000


def test_prompt_templates_are_validated_at_load(tmp_path):
    import shutil
    from pathlib import Path

    prompts = tmp_path / "prompts"
    shutil.copytree(Path(__file__).resolve().parents[1] / "prompts", prompts)
    assert set(load_prompts(prompts)) == {"system", "answer", "passage", "naive"}
    (prompts / "answer.txt").write_text("Passages:\n{passages}\n\nQ: {query}\n")
    with pytest.raises(PromptError, match=r"unknown variables \['query'\], missing variables \['question'\]"):
        load_prompts(prompts)
    (prompts / "answer.txt").unlink()
    with pytest.raises(PromptError, match="missing"):
        load_prompts(prompts)


def test_unknown_model_lists_the_known_ones(settings):
    a = Assistant(Settings(home=settings.home, model="gpt-17"))
    with pytest.raises(UnknownModelError, match=r"known models: qwen2\.5-coder-1\.5b, qwen2\.5-coder-0\.5b"):
        a.load_generator()


# --- the real model -----------------------------------------------------------------------------


@pytest.mark.llm
def test_real_default_model_answers_with_a_verified_citation(settings, embedder, small_corpus, default_model):
    a = Assistant(settings, embedder=embedder, generator=default_model)
    a.ingest([small_corpus])
    answer = a.ask(
        "By what factor does the logical error rate fall when the surface code distance grows from three to five?"
    )
    assert not answer.refused, answer.raw_text
    assert "2.1" in answer.text
    assert answer.citations[0].title.startswith("Quantum Error Correction")
    assert answer.timings.first_token_s is not None


@pytest.mark.llm
def test_real_default_model_names_the_authors_the_corpus_lists(settings, embedder, small_corpus, default_model):
    # the record's authors are shown beside its title: before, the model named a word of the title
    a = Assistant(settings, embedder=embedder, generator=default_model)
    a.ingest([small_corpus])
    answer = a.ask("Who wrote the paper about surface codes on superconducting qubits?")
    assert not answer.refused, answer.raw_text
    assert "Fowler" in answer.text, answer.text
    assert answer.citations[0].title.startswith("Quantum Error Correction")


@pytest.mark.llm
def test_real_model_invented_numbers_never_reach_the_user(settings, embedder, small_corpus, small_model):
    a = Assistant(settings, embedder=embedder, generator=small_model)
    a.ingest([small_corpus])
    question = "What logical error rate does the surface code reach at code distance eleven?"
    answer = a.ask(question)
    from rag.answer.citations import strip_keys
    from rag.text import numbers

    assert answer.raw_text, "the question is about a retrieved paper: it must reach the model"
    if answer.refused:  # nothing of what the model wrote is shown
        assert answer.text == CANNOT_ANSWER and answer.citations == []
    else:  # every number shown is in the passage its sentence cites
        cited_text = " ".join(f"{c.title} {c.text}" for c in answer.citations)
        assert numbers(strip_keys(answer.text)) <= numbers(cited_text)
    retrieved = " ".join(f"{h.title} {h.text}" for h in a.search(question, k=10))
    invented = numbers(strip_keys(answer.raw_text)) - numbers(retrieved)
    assert not invented & numbers(strip_keys(answer.text))
    assert "eleven" not in answer.text.lower() or answer.refused


def test_cancel_stops_the_model_at_its_next_token(settings, hash_embedder, small_corpus):
    reply = (
        "Marine heatwaves are becoming more frequent [1]. "
        + "Reefs with higher thermal variability resisted bleaching [1]. " * 5
    )
    a, gen = make(settings, hash_embedder, small_corpus, [reply])
    consumed = []
    original = gen.stream

    def counting(*args, **kwargs):
        for piece in original(*args, **kwargs):
            consumed.append(piece)
            yield piece

    gen.stream = counting
    stream = a.stream("Which coral reefs resisted bleaching during marine heatwaves?")
    pieces = []
    for piece in stream:
        pieces.append(piece)
        stream.cancel()
    assert len(pieces) == 1 and stream.cancelled and stream.answer is None
    assert len(consumed) < len(reply.split())  # the model was not run to the end


def test_set_model_keeps_the_old_model_when_the_new_one_fails(settings, hash_embedder, small_corpus):
    a, _gen = make(settings, hash_embedder, small_corpus, [QUANTUM_FACT])
    with pytest.raises(UnknownModelError):
        a.set_model("no-such-model")
    assert a.model_loaded and a.model_name == "scripted"


@pytest.mark.llm
def test_real_model_follow_up_keeps_its_topic_and_an_unrelated_question_stays_alone(
    settings, embedder, small_corpus, default_model
):
    a = Assistant(settings, embedder=embedder, generator=default_model)
    a.ingest([small_corpus])
    moe = "Sparse Mixture-of-Experts Language Models at Low Cost"
    first = a.ask("What is a sparse mixture-of-experts language model?")
    assert not first.refused and first.citations[0].title == moe, first.raw_text
    follow = a.ask("How many experts do they use?", history=[first])
    assert moe in follow.standalone_question and "they" not in follow.standalone_question.split()
    assert not follow.refused and "64" in follow.text, follow.raw_text
    assert follow.citations[0].title == moe
    question = "Which coral reefs resisted bleaching during marine heatwaves?"
    unrelated = a.ask(question, history=[first, follow])
    alone = a.ask(question)
    assert unrelated.standalone_question == question
    assert [c.title for c in unrelated.citations] == [c.title for c in alone.citations]
    a.close()


def test_events_show_tokens_then_verified_or_dropped_sentences_then_the_answer(settings, hash_embedder, small_corpus):
    reply = QUANTUM_FACT + " It was invented by Kitaev in 1997 [1]."
    a, _ = make(settings, hash_embedder, small_corpus, [reply, reply])
    question = "How much does the logical error rate of the surface code fall with distance?"
    events = list(a.events(question))
    kinds = [e.kind for e in events]
    assert kinds[0] == "token" and kinds[-1] == "done" and kinds.count("done") == 1
    assert "".join(e.text for e in events if e.kind == "token") == reply.replace(" [1].", " [1].")
    # the verified sentence comes after the tokens that wrote it, the invented one is dropped with a reason
    assert kinds.index("sentence") > kinds.index("token")
    (dropped,) = [e for e in events if e.kind == "dropped"]
    assert "1997" in dropped.text and "1997" in (dropped.reason or "")
    assert "".join(e.text for e in events if e.kind == "sentence") == events[-1].text
    assert [e.t for e in events] == sorted(e.t for e in events)
    asked = a.ask(question)
    done = events[-1].answer
    assert done is not None and (done.text, done.citations, done.dropped) == (
        asked.text,
        asked.citations,
        asked.dropped,
    )


def test_rag_ask_events_prints_json_lines(rag_home, hash_embedder, small_corpus):
    from click.testing import CliRunner

    from rag.cli import cli

    obj = {"embedder": hash_embedder, "generator": ScriptedGenerator([QUANTUM_FACT])}
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(rag_home), "ingest", str(small_corpus)], obj=dict(obj)).exit_code == 0
    result = runner.invoke(
        cli,
        [
            "--home",
            str(rag_home),
            "ask",
            "--events",
            "How much does the logical error rate of the surface code fall with distance?",
        ],
        obj=dict(obj),
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["kind"] == "done" and lines[-1]["answer"]["answer"] == QUANTUM_FACT
    assert {line["kind"] for line in lines[:-1]} == {"token", "sentence"}


# --- issue 25, item 3: an answer that cannot be empty of content ---------------------------------------


def test_a_model_that_only_restates_the_question_gets_a_quoted_cited_answer(settings, hash_embedder, small_corpus):
    from rag.answer.answering import QUOTE_LEAD
    from rag.types import AnswerReport

    question = "Which coral reefs resisted bleaching during marine heatwaves?"
    a, _ = make(
        settings, hash_embedder, small_corpus, ["Coral reefs that resisted bleaching during marine heatwaves are [1]."]
    )
    answer = a.ask(question)
    assert not answer.refused and answer.quoted
    assert (
        answer.text
        == f"{QUOTE_LEAD} “Reefs with higher thermal variability in the past were more resistant to bleaching.” [1]"
    )
    (citation,) = answer.citations
    assert citation.title == "Coral Reef Bleaching under Marine Heatwaves"
    assert citation.sentences == ["Reefs with higher thermal variability in the past were more resistant to bleaching."]
    assert answer.dropped and "quotes" in answer.notices[-1]  # why it is a quotation, for the CLI, chat and server
    assert AnswerReport.of(answer).quoted
    # streamed the same way
    events = list(a.events(question))
    assert [e.text for e in events if e.kind == "sentence"] == [answer.text]


def test_an_off_topic_question_is_still_refused_and_a_model_that_says_no_is_not_overruled(
    settings, hash_embedder, small_corpus
):
    a, gen = make(settings, hash_embedder, small_corpus, [CANNOT_ANSWER])
    answer = a.ask("What is the capital of France?")
    assert answer.refused and not answer.quoted and gen.calls == []
    answer = a.ask("Which coral reefs resisted bleaching during marine heatwaves?")
    assert answer.refused and not answer.quoted and answer.citations == []


def _hit(title: str, text: str, dense: float, named: bool = False, ranks: tuple[int, int] = (2, 2)):
    from rag.types import Hit

    return Hit(
        f"{title}:0",
        title,
        title,
        text,
        1.0,
        dense_score=dense,
        named=named,
        dense_rank=ranks[0],
        lexical_rank=ranks[1],
    )


CORAL = (
    "Coral Reef Bleaching under Marine Heatwaves",
    "Marine heatwaves are becoming more frequent and intense. We analyse twenty years of satellite data together "
    "with field surveys of 120 reefs. Reefs with higher thermal variability in the past were more resistant to "
    "bleaching.",
)


def test_a_quote_is_only_offered_where_retrieval_is_confident_and_the_sentence_can_answer():
    from rag.answer.answering import best_quote

    coral = _hit(*CORAL, dense=0.6)
    quote = best_quote("Which reefs were more resistant to bleaching during heatwaves?", [coral])
    assert quote is not None and quote.sentence.startswith("Reefs with higher thermal variability")
    # a passage that is not close enough, and that the question does not name, is not quoted
    assert (
        best_quote("Which reefs were more resistant to bleaching during heatwaves?", [_hit(*CORAL, dense=0.3)]) is None
    )
    # ... unless the search by words and one by meaning both rank it first
    question = "Which reefs were more resistant to bleaching during heatwaves?"
    assert best_quote(question, [_hit(*CORAL, dense=0.3, ranks=(1, 1))]) is not None
    assert best_quote(question, [_hit(*CORAL, dense=0.3, ranks=(1, 4))]) is None  # meaning alone
    # ... or the question calls the paper by name and one search ranks it first
    assert best_quote(question, [_hit(*CORAL, dense=0.3, named=True, ranks=(3, 1))]) is not None
    assert best_quote(question, [_hit(*CORAL, dense=0.3, named=True)]) is None
    # a question about a name the passage never mentions (another model, a metric it does not report)
    assert best_quote("Which reefs does ReefNet-XL find more resistant to bleaching?", [coral]) is None
    assert best_quote("What AUC do reefs more resistant to bleaching reach?", [coral]) is None
    # a question asking for a quantity is not answered by a sentence without a number
    assert best_quote("How much more resistant to bleaching were reefs with thermal variability?", [coral]) is None
    assert "120" in best_quote("How many reefs were surveyed in the field for the heatwave study?", [coral]).sentence
    # nor a question set at a value the passage never states (in digits or words)
    assert best_quote("How many reefs were surveyed over thirty years of satellite data?", [coral]) is None
    assert best_quote("How many reefs were surveyed over twenty years of satellite data?", [coral]) is not None
    # nor a question asking who
    assert best_quote("Who showed that reefs with thermal variability resist bleaching?", [coral]) is None
