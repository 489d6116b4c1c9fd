"""What an index keeps on disk and how it is searched: the catalog of papers and chunks, the vector
store (Chroma), the lexical index (BM25), the per-paper vectors, filters, locking and the data dir."""
