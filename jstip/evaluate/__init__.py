"""Evaluation of a speech-LLM: decoding a test set, the listening figure, spoken tasks, the Whisper baseline, and
the `jstip evaluate` / `jstip transcribe` commands. Scores come from :mod:`jstip.scoring`."""
