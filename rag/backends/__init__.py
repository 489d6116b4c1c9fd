"""The models and the engines behind them: the embedders (local ONNX or an OpenAI-compatible server),
the generators (llama.cpp or an OpenAI-compatible server), the model catalogue and the pip-packaged
weights."""
