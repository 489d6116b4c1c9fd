"""The evaluation harness scores a tiny QA file whose right and wrong answers are known."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rag import Assistant, Settings
from rag.answer.prompts import CANNOT_ANSWER
from rag.evaluate import evaluate_answers
from rag.scoring import evaluate_retrieval, load_qa
from rag.testing import ScriptedGenerator

QA = [
    {
        "id": "q1",
        "type": "factoid",
        "question": "By what factor does the logical error rate of the surface code fall?",
        "gold_titles": ["Quantum Error Correction with Surface Codes on Superconducting Qubits"],
        "answer_any": ["2.1"],
    },
    {
        "id": "q2",
        "type": "factoid",
        "question": "What median GDT score does the pair-attention protein network reach on CASP?",
        "gold_titles": ["Protein Folding Prediction with Attention over Residue Pairs"],
        "answer_any": ["87.4"],
    },
    {
        "id": "q3",
        "type": "paraphrase",
        "question": "Which reefs held up better when the ocean got unusually hot?",
        "gold_titles": ["Coral Reef Bleaching under Marine Heatwaves"],
        "answer_any": ["thermal variability"],
    },
    {
        "id": "q4",
        "type": "factoid",
        "question": "By how much does the diffusion convolutional recurrent network lower traffic forecasting error?",
        "gold_titles": ["Graph Neural Networks for Traffic Forecasting"],
        "answer_any": ["12 percent"],
    },
    {
        "id": "q5",
        "type": "unanswerable",
        "question": "What logical error rate does the surface code reach at distance eleven?",
        "gold_titles": [],
        "answer_any": [],
    },
    {
        "id": "q6",
        "type": "unanswerable",
        "question": "What is the capital of France?",
        "gold_titles": [],
        "answer_any": [],
    },
]

REPLIES = {
    "q1": "The logical error rate falls by a factor of 2.1 from distance three to five [1].",  # right
    "q2": "The model reaches a median GDT score of 87.4 on CASP [1].",  # right
    "q3": CANNOT_ANSWER,  # a false refusal
    "q4": "Mixture-of-experts layers route each token to a few expert networks [1].",  # wrong paper, no answer
    "q5": "At distance eleven the logical error rate is 0.0001 [1].",  # invented: must be refused
    "q6": "The capital of France is Paris [1].",  # never asked: the relevance gate refuses first
}


def scripted(messages):
    prompt = messages[-1]["content"]
    for item in QA:
        if item["question"] in prompt:
            return REPLIES[item["id"]]
    raise AssertionError("unexpected prompt")


@pytest.fixture
def qa_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(i) for i in QA) + "\n")
    return path


def test_every_metric_has_its_known_value(rag_home, embedder, small_corpus, qa_file):
    # The real embedder: q3 is a paraphrase that shares no word with its paper's abstract.
    generator = ScriptedGenerator(scripted)
    a = Assistant(Settings(home=rag_home, context_passages=5), embedder=embedder, generator=generator)
    a.ingest([small_corpus])
    items = load_qa(qa_file)

    retrieval = evaluate_retrieval(items, lambda q: a.search(q, k=5))
    assert retrieval["all"].n == 4 and retrieval["all"].top5 == 1.0
    assert retrieval["all"].mrr == pytest.approx(sum(1 / r for r in _gold_ranks(a, items)) / 4)

    records, scores = evaluate_answers(items, lambda q, h: a.ask(q, history=h))
    by_id = {r.id: r for r in records}
    assert [by_id[i].hit for i in ("q1", "q2", "q3", "q4")] == [True, True, False, False]
    assert by_id["q4"].cited_titles == ["Sparse Mixture-of-Experts Language Models at Low Cost"]
    assert by_id["q5"].refused and by_id["q6"].refused
    assert len(generator.calls) == 5  # q6 never reached the model

    s = scores["all"]
    assert s.answer_hit_rate == 0.5
    assert s.citation_precision == pytest.approx(2 / 3)
    assert s.citation_recall == 0.5
    assert s.refusal_accuracy == 1.0
    assert s.false_refusals == 0.25
    assert scores["unanswerable"].refusal_accuracy == 1.0 and scores["paraphrase"].false_refusals == 1.0
    assert s.median_total_s is not None and s.median_first_token_s is not None


def _gold_ranks(a, items):
    ranks = []
    for item in items:
        if item.gold_titles:
            titles = [h.title for h in a.search(item.question, k=5)]
            ranks.append(titles.index(item.gold_titles[0]) + 1)
    return ranks


def test_follow_ups_are_asked_after_their_history(rag_home, hash_embedder, small_corpus, tmp_path):
    qa = tmp_path / "follow.jsonl"
    qa.write_text(
        json.dumps(
            {
                "id": "f1",
                "type": "followup",
                "question": "How many experts does it use?",
                "gold_titles": ["Sparse Mixture-of-Experts Language Models at Low Cost"],
                "answer_any": ["64"],
                "history": ["What is the sparse mixture-of-experts language model?"],
            }
        )
        + "\n"
    )
    replies = [
        "Mixture-of-experts layers route each token to a few expert feed-forward networks [1].",
        "The sparse language model uses 64 experts [1].",
    ]
    generator = ScriptedGenerator(replies)
    a = Assistant(Settings(home=rag_home), embedder=hash_embedder, generator=generator)
    a.ingest([small_corpus])
    records, _scores = evaluate_answers(load_qa(qa), lambda q, h: a.ask(q, history=h))
    assert records[0].hit is True
    assert len(generator.calls) == 2  # history question, follow-up (resolved without a model call)
    assert "Sparse Mixture-of-Experts" in records[0].standalone_question


def test_cli_eval_writes_results_and_compares(rag_home, hash_embedder, small_corpus, qa_file, tmp_path):
    from rag.cli import cli

    runner = CliRunner()
    obj = {"embedder": hash_embedder}
    assert runner.invoke(cli, ["--home", str(rag_home), "ingest", str(small_corpus)], obj=dict(obj)).exit_code == 0
    out1, out2 = tmp_path / "r1.json", tmp_path / "r2.json"
    for out, k in ((out1, "5"), (out2, "1")):
        result = runner.invoke(
            cli,
            [
                "--home",
                str(rag_home),
                "eval",
                str(qa_file),
                "--retrieval-only",
                "--baselines",
                "--k",
                k,
                "-o",
                str(out),
            ],
            obj=dict(obj),
        )
        assert result.exit_code == 0, result.output
    data = json.loads(out1.read_text())
    assert data["retrieval"]["all"]["n"] == 4 and set(data["baselines"]) == {"lexical", "dense"}
    result = runner.invoke(cli, ["eval", "--compare", str(out1), str(out2)], obj={})
    assert result.exit_code == 0 and "retrieval.all" in result.output and "top5" in result.output


def test_run_eval_reports_every_part_it_ran_and_only_those(rag_home, hash_embedder, small_corpus, qa_file):
    from rag.evaluate import run_eval

    a = Assistant(Settings(home=rag_home), embedder=hash_embedder, generator=ScriptedGenerator(scripted))
    a.ingest([small_corpus])
    items = load_qa(qa_file)
    stages = []
    full = run_eval(a, items, file=qa_file, k=5, baselines=True, progress=lambda stage, n, total: stages.append(stage))
    data = full.model_dump(mode="json")
    assert list(data) == ["file", "k", "items", "retrieval", "baselines", "model", "stages", "answers", "records"]
    assert data["model"] == "scripted" and len(data["records"]) == len(QA)
    assert {name: list(base) for name, base in data["baselines"].items()} == {
        "lexical": ["retrieval"],
        "dense": ["retrieval"],
        "naive_rag": ["answers"],
    }
    assert data["answers"]["all"]["answer_hit_rate"] == 0.5
    assert stages == ["answers"] * len(QA) + ["naive_rag"] * len(QA)
    assert data["answers"]["unanswerable"]["answer_hit_rate"] is None  # a metric that does not apply stays null
    retrieval_only = run_eval(a, items, file=qa_file, retrieval_only=True).model_dump(mode="json")
    assert list(retrieval_only) == ["file", "k", "items", "retrieval"]


def test_cli_ask_json_shape(rag_home, hash_embedder, small_corpus):
    from rag.cli import cli

    generator = ScriptedGenerator([REPLIES["q1"]])
    runner = CliRunner()
    obj = {"embedder": hash_embedder, "generator": generator}
    assert runner.invoke(cli, ["--home", str(rag_home), "ingest", str(small_corpus)], obj=dict(obj)).exit_code == 0
    result = runner.invoke(cli, ["--home", str(rag_home), "ask", "--json", QA[0]["question"]], obj=dict(obj))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == [
        "question",
        "answer",
        "refused",
        "citations",
        "timings",
        "model",
        "standalone_question",
        "prompt_tokens",
        "completion_tokens",
        "quoted",
        "via",
    ]
    assert data["via"] == "in-process"  # no `rag serve` to answer through
    assert data["answer"] == REPLIES["q1"] and not data["refused"] and data["model"] == "scripted"
    assert [list(c) for c in data["citations"]] == [["key", "paper_id", "title", "text"]]
    assert list(data["timings"]) == ["retrieve_s", "first_token_s", "total_s"]


def test_the_stages_locate_where_an_answer_is_lost(rag_home, hash_embedder, small_corpus, qa_file):
    """Gold paper shown, expected answer shown, hit: per type, from a full run and without the model alike."""
    from rag.evaluate import run_eval

    generator = ScriptedGenerator(scripted)
    a = Assistant(Settings(home=rag_home), embedder=hash_embedder, generator=generator)
    a.ingest([small_corpus])
    items = load_qa(qa_file)
    full = run_eval(a, items, file=qa_file)
    by_id = {r.id: r for r in full.records}
    # q1, q2: shown and answered; q4: shown, but the model wrote of another paper; q3 (a paraphrase
    # sharing no word with its paper) never reaches a model that embeds words
    assert [(by_id[i].gold_shown, by_id[i].answer_shown, by_id[i].hit) for i in ("q1", "q2", "q3", "q4")] == [
        (True, True, True),
        (True, True, True),
        (False, False, False),
        (True, True, False),
    ]
    assert by_id["q5"].gold_shown is None  # unanswerable items have no stages
    stages = {t: s.model_dump() for t, s in full.stages.items()}
    assert stages["all"] == {"n": 4, "gold_shown": 0.75, "answer_shown": 0.75, "hit": 0.5}
    assert stages["paraphrase"] == {"n": 1, "gold_shown": 0.0, "answer_shown": 0.0, "hit": 0.0}
    calls = len(generator.calls)
    context = run_eval(a, items, file=qa_file, context_only=True)
    assert len(generator.calls) == calls  # nothing generated
    assert context.answers is None and context.records is None
    assert {t: (s.gold_shown, s.answer_shown, s.hit) for t, s in context.stages.items()} == {
        t: (s.gold_shown, s.answer_shown, None) for t, s in full.stages.items()
    }
