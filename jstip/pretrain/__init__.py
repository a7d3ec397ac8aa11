"""Priors for CPU-scale runs: a CTC-pretrained speech encoder and a text-pretrained tiny LLM.

The JSTIP paper starts from a pretrained encoder and a pretrained LLM. At CPU scale a speech-LLM trained from random
weights learns too slowly, so ``jstip pretrain`` makes both priors on the run's own data:

- :func:`jstip.pretrain.ctc.train_ctc`: a NeMo ``EncDecCTCModel`` (mel preprocessor + ConformerEncoder of the speech-LLM
  config's sizes, character vocabulary) trained with CTC on lhotse cuts; its ``.nemo`` is what
  ``model.encoder.nemo_path`` of ``jstip train`` takes.
- :func:`jstip.pretrain.text_lm.train_text_lm`: a byte-level BPE tokenizer and a tiny Llama trained on plain text; its
  folder is what ``model.llm.kind=hf`` / ``model.tokenizer.kind=hf`` with ``path`` take.
"""
