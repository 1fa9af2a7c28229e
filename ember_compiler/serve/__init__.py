"""`ember serve`: specs as OpenAI-compatible models (layer 10, above eval, below api)."""
