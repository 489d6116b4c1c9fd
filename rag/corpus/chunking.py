"""Paper -> chunks that fit the embedder's window, split on sentence boundaries."""

from __future__ import annotations

from collections.abc import Callable

from rag.text import split_sentences
from rag.types import Chunk, Paper

TokenCounter = Callable[[list[str]], list[int]]


def word_count_tokens(texts: list[str]) -> list[int]:
    """A cheap stand-in for a word-piece tokenizer (about 1.3 pieces a word in these abstracts)."""
    return [int(len(t.split()) * 1.3) + 1 for t in texts]


def _split_long(sentence: str, budget: int, count: TokenCounter) -> list[str]:
    """Cut a sentence longer than the budget into word runs that fit."""
    words = sentence.split()
    pieces, start = [], 0
    while start < len(words):
        end = len(words)
        # Shrink by halves, then grow back word by word: few tokenizer calls per piece.
        while end - start > 1 and count([" ".join(words[start:end])])[0] > budget:
            end = start + max(1, (end - start) // 2)
        while end < len(words) and count([" ".join(words[start : end + 1])])[0] <= budget:
            end += 1
        pieces.append(" ".join(words[start:end]))
        start = end
    return pieces


def chunk_paper(paper: Paper, count: TokenCounter, max_tokens: int = 160, overlap: int = 1) -> list[Chunk]:
    """Greedy sentence packing; each chunk repeats the last `overlap` sentences of the one before.

    `max_tokens` counts the title that is embedded with every chunk, plus the two special tokens.
    """
    split = split_sentences(paper.abstract)
    title_tokens, *sentence_tokens = count([paper.title + ". ", *split])
    budget = max(16, max_tokens - title_tokens - 2)
    sentences: list[str] = []
    sizes: list[int] = []
    for sentence, size in zip(split, sentence_tokens):
        if size <= budget:
            sentences.append(sentence)
            sizes.append(size)
        else:
            pieces = _split_long(sentence, budget, count)
            sentences.extend(pieces)
            sizes.extend(count(pieces))

    chunks: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, size in enumerate(sizes):
        if current and used + size > budget:
            chunks.append(current)
            keep = current[-overlap:] if overlap else []
            # Overlap only if it leaves room for the new sentence.
            while keep and sum(sizes[i] for i in keep) + size > budget:
                keep = keep[1:]
            current, used = list(keep), sum(sizes[i] for i in keep)
        current.append(index)
        used += size
    if current:
        chunks.append(current)
    paper_id = paper.paper_id  # a hash of the normalised text: computed once, not per chunk
    return [
        Chunk(paper_id=paper_id, position=position, title=paper.title, text=" ".join(sentences[i] for i in group))
        for position, group in enumerate(chunks)
    ]
