"""Task-vector merging of Hugging Face model folders (`jstip merge`): speech LLM + scale * (instruct - base)."""
