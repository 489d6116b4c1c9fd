"""Writing an index: the ingest pipeline (read, chunk, embed, commit in batches, rebuild beside the
old index and swap) and its parts."""
