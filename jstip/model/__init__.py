"""The speech-LLM: encoder (NeMo) -> adapter -> Hugging Face causal LM. Builders live in the submodules."""
