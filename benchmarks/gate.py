"""The relevance gate, calibrated: for each threshold and rule, how many questions it refuses without
calling the model, on four kinds of question (no model is loaded; a search each).

- QA files (answerable / unanswerable items; follow-ups left out: they are resolved with their history);
- "What is <name>?" for every name a bundled title leads with ("SimMIM: ...") that reads as a name;
- off-topic questions that no paper abstract answers (written here, not taken from any eval set).

Usage: python benchmarks/gate.py [QA.jsonl ...]   (RAG_HOME: an index of the bundled corpus)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from rag import Assistant
from rag.corpus.readers import dedupe, read_corpus
from rag.scoring import load_qa
from rag.text import name_spans, title_name
from rag.types import Hit

OFF_TOPIC = [
    "What is the capital of France?",
    "Who won the football World Cup in 2018?",
    "How long should I boil an egg for a soft yolk?",
    "What is the best time of year to visit Japan?",
    "How do I change a flat tyre on a bicycle?",
    "Which wine goes best with a blue cheese?",
    "What is the tallest mountain in Africa?",
    "How many players are on a basketball team?",
    "What year did the Berlin Wall fall?",
    "How do I reset my router password?",
    "Who painted the Mona Lisa?",
    "What are the symptoms of the common cold?",
    "How much does a kilogram of apples cost?",
    "Who wrote Pride and Prejudice?",
    "What is the boiling point of water in Fahrenheit?",
    "How do I make sourdough bread at home?",
    "When does the next train to Edinburgh leave?",
    "What is the plot of the movie Titanic?",
    "How many moons does Jupiter have?",
    "Which planet is closest to the sun?",
]
THRESHOLDS = (0.15, 0.20, 0.25, 0.30, 0.35)
Rule = Callable[[Sequence[Hit], float], bool]
RULES: dict[str, Rule] = {
    "dense": lambda hits, t: max((h.dense_score or 0.0) for h in hits) >= t if hits else False,
    "dense or named": lambda hits, t: (
        bool(hits) and (any(h.named for h in hits) or max((h.dense_score or 0.0) for h in hits) >= t)
    ),
}


def name_questions() -> list[str]:
    out = []
    for paper in dedupe(read_corpus(None).papers):
        lead = title_name(paper.title)
        if lead and lead in name_spans(f"What is {lead}?"):
            out.append(f"What is {lead}?")
    return sorted(set(out))


def main(qa_files: list[str]) -> None:
    assistant = Assistant()
    k = assistant.settings.retrieval.candidates_for_answer
    groups: dict[str, list[list[Hit]]] = {
        "off-topic (should be refused)": [assistant.search(q, k=k) for q in OFF_TOPIC],
        '"What is <name>?" (should pass)': [assistant.search(q, k=k) for q in name_questions()],
    }
    for path in qa_files:
        items = [i for i in load_qa(path) if i.type != "followup"]
        name = path.rsplit("/", 1)[-1]
        groups[f"{name} unanswerable"] = [assistant.search(i.question, k=k) for i in items if not i.answerable]
        groups[f"{name} answerable (should pass)"] = [assistant.search(i.question, k=k) for i in items if i.answerable]
    print("| rule | min_relevance | " + " | ".join(f"refused: {g} (n={len(h)})" for g, h in groups.items()) + " |")
    print("|---|---|" + "---|" * len(groups))
    for rule_name, rule in RULES.items():
        for t in THRESHOLDS:
            cells = [f"{sum(not rule(h, t) for h in hits)}" for hits in groups.values()]
            print(f"| {rule_name} | {t:.2f} | " + " | ".join(cells) + " |")
    assistant.close()


if __name__ == "__main__":
    main(sys.argv[1:])
