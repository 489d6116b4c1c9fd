from __future__ import annotations

import itertools

from rag.corpus.chunking import chunk_paper, split_sentences, word_count_tokens
from rag.corpus.readers import dedupe, read_corpus
from rag.types import Paper


def test_sentence_splitter_keeps_abbreviations_and_decimals():
    text = "We use e.g. BERT et al. models. Accuracy rises to 3.5 points. Does it work? Yes! 10 runs agree."
    assert split_sentences(text) == [
        "We use e.g. BERT et al. models.",
        "Accuracy rises to 3.5 points.",
        "Does it work?",
        "Yes!",
        "10 runs agree.",
    ]


def test_bundled_chunks_fit_the_window_with_title_and_overlap(embedder):
    papers = dedupe(read_corpus().papers)[:60]
    for paper in papers:
        chunks = chunk_paper(paper, embedder.count_tokens, max_tokens=160, overlap=1)
        sizes = embedder.count_tokens([c.embedded_text for c in chunks])
        assert max(sizes) <= 160, paper.title
        assert all(c.embedded_text.startswith(paper.title) for c in chunks)
        assert [c.chunk_id for c in chunks] == [f"{paper.paper_id}:{i}" for i in range(len(chunks))]
        # every sentence of the abstract is in some chunk
        joined = " ".join(c.text for c in chunks)
        assert all(s in joined for s in split_sentences(paper.abstract))
        sentences = split_sentences(paper.abstract)
        for a, b in itertools.pairwise(chunks):
            if split_sentences(a.text)[-1] not in sentences or split_sentences(b.text)[0] not in sentences:
                continue  # a sentence too long for the window was cut into pieces
            last_of_a = sentences.index(split_sentences(a.text)[-1])
            first_of_b = sentences.index(split_sentences(b.text)[0])
            # one sentence of overlap, unless that sentence and the next do not fit together
            assert first_of_b == last_of_a or (
                first_of_b == last_of_a + 1
                and embedder.count_tokens([f"{paper.title}. {sentences[last_of_a]} {sentences[first_of_b]}"])[0] > 150
            )


def test_a_sentence_longer_than_the_window_is_cut():
    paper = Paper(title="T", abstract=" ".join(["word"] * 400) + ".", source="x")
    chunks = chunk_paper(paper, word_count_tokens, max_tokens=64, overlap=0)
    assert len(chunks) > 5
    assert all(word_count_tokens([c.embedded_text])[0] <= 64 for c in chunks)
    assert sum(len(c.text.split()) for c in chunks) == 400


def test_chunk_ids_are_stable():
    paper = Paper(title="Stable", abstract="One sentence here. Another sentence there. " * 30, source="x")
    first = [c.chunk_id for c in chunk_paper(paper, word_count_tokens, 80)]
    assert first == [c.chunk_id for c in chunk_paper(paper.model_copy(), word_count_tokens, 80)]
