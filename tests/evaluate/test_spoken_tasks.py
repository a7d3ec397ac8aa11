import math

import numpy as np
import pytest
import torch

from jstip.evaluate.modality_gap import (
    LETTERS,
    few_shot_examples,
    letter_logprobs_from_logits,
    letter_token_ids,
    load_mcq,
    modality_gap,
    speech_prompt,
    text_prompt,
)
from jstip.evaluate.spoken_qa import contains_answer, exact_match, load_qa, normalize_answer, score_qa


def test_shipped_mcq_items():
    items = load_mcq()
    assert len(items) >= 40
    assert {item["subject"] for item in items} == {"general", "medical"}
    answers = [item["answer"] for item in items]
    assert all(answers.count(letter) == len(items) // 4 for letter in LETTERS)  # no letter bias to exploit
    assert all(list(item["options"]) == list(LETTERS) for item in items)


def test_prompts_differ_only_in_modality_of_the_asked_item():
    items = load_mcq()
    item = items[0]
    shots = few_shot_examples(items, item, 5)
    assert len(shots) == 5 and item not in shots and all(s["subject"] == item["subject"] for s in shots)
    text = text_prompt(item, shots)
    assert text.endswith("Answer:") and text.count("Answer:") == 6
    prefix, spoken, suffix = speech_prompt(item, shots)
    assert item["question"] in spoken and all(f"Option {letter}:" in spoken for letter in LETTERS)
    assert suffix == "\nAnswer:" and prefix.count("Answer:") == 5
    assert item["question"] not in prefix  # the asked item is only in the audio


def test_modality_gap_with_a_scripted_model():
    items = load_mcq()

    def letter_logprobs(item, modality):
        # text: always right; speech: right on general items only, wrong (the next letter) on medical ones
        answer = item["answer"]
        if modality == "speech" and item["subject"] == "medical":
            answer = LETTERS[(LETTERS.index(answer) + 1) % 4]
        return {letter: (0.0 if letter == answer else -5.0) for letter in LETTERS}

    result = modality_gap(items, letter_logprobs, num_samples=300)
    assert result["accuracy_text"] == 1.0
    assert result["accuracy_speech"] == pytest.approx(0.5)
    assert result["gap"] == pytest.approx(-0.5)
    low, high = result["gap_interval"]
    assert low <= -0.5 <= high and high < 0
    assert result["per_subject"]["medical"]["accuracy_speech"] == 0.0
    assert result["per_subject"]["general"]["gap"] == 0.0
    assert result["agreement"] == pytest.approx(0.5)


def test_letter_logprobs_from_logits_sums_spellings_and_renormalises():
    logits = torch.full((10,), -10.0)
    logits[1], logits[2], logits[5] = 2.0, 2.0, 1.0  # "A" spelled by tokens 1 and 2, "B" by 5
    lp = letter_logprobs_from_logits(logits, {"A": [1, 2], "B": [5], "C": [7], "D": [8]})
    assert sum(math.exp(v) for v in lp.values()) == pytest.approx(1.0)
    assert math.exp(lp["A"]) / math.exp(lp["B"]) == pytest.approx(2 * math.e, rel=1e-6)
    assert letter_logprobs_from_logits(np.asarray(logits), {"A": [1], "B": [5]}).keys() == {"A", "B"}


def test_letter_token_ids_with_a_real_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "A": 1, "B": 2, "C": 3, "D": 4, "Answer": 5, ":": 6}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    assert letter_token_ids(tokenizer) == {"A": [1], "B": [2], "C": [3], "D": [4]}
    with pytest.raises(ValueError, match="'E'"):
        letter_token_ids(tokenizer, ["E"])


def test_spoken_qa_matching():
    assert normalize_answer("The Pacific Ocean.") == "pacific ocean"
    assert exact_match("Paris.", ["Paris"])
    assert not exact_match("It is Paris.", ["Paris"])
    assert contains_answer("The capital of France is Paris.", ["Paris"])
    assert not contains_answer("Parisian food", ["Paris"])
    assert exact_match("8", ["eight", "8"]) and not exact_match("eighty", ["eight", "8"])


def test_score_qa_and_shipped_items():
    items = load_qa()
    assert len(items) >= 30 and len({i["id"] for i in items}) == len(items)
    responses = {items[0]["id"]: items[0]["answers"][0], items[1]["id"]: f"I think it is {items[1]['answers'][0]}."}
    result = score_qa(items[:3], responses)
    assert result["exact_match"] == pytest.approx(1 / 3)
    assert result["contains"] == pytest.approx(2 / 3)
    assert result["missing_ids"] == [items[2]["id"]]


def test_text_condition_with_a_tiny_causal_lm():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from jstip.evaluate.modality_gap import causal_lm_text_logprobs

    vocab = {"[UNK]": 0, "A": 1, "B": 2, "C": 3, "D": 4, "Answer": 5, ":": 6, "Question": 7, ".": 8}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=1024)).eval()
    items = load_mcq()[:4]
    text_lp = causal_lm_text_logprobs(model, tokenizer, items, shots=2)
    lp = text_lp(items[0], "text")
    assert set(lp) == set(LETTERS) and sum(math.exp(v) for v in lp.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="text condition only"):
        text_lp(items[0], "speech")

    def both(item, modality):  # a speech-LLM's callable would encode audio here; the text side is reused
        return text_lp(item, "text")

    result = modality_gap(items, both, num_samples=50)
    assert result["gap"] == 0.0 and result["agreement"] == 1.0
