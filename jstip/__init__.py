"""jstip: joint speech-text interleaved pretraining for speech-LLM ASR."""

__version__ = "0.1.0"
