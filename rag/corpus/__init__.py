"""From files to papers and chunks: the corpus readers (JSON, JSONL, BibTeX, arXiv and LaTeX, text),
sentence chunking, and where a corpus came from."""
