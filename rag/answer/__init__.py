"""From a question to a checked answer: retrieval (fusion of the signals), the passages the model is
shown, the prompts, generation, citation checks and follow-up questions."""
