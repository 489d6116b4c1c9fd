"""`rag serve`: the assistant over HTTP (an OpenAI-compatible API with server-sent events) and the
client that `rag ask --server` and the chat use."""
