import json

import pytest

from jstip.evaluate.instructions import (
    CHECKS,
    check_instruction,
    count_sentences,
    count_words,
    load_items,
    loose_variants,
    score_responses,
    validate_instruction,
)

# (instruction, a response that follows it, a response that does not)
CASES = [
    ({"type": "length_words", "relation": "at_most", "num": 5}, "one two three four five", "one two three four five six"),
    ({"type": "length_words", "relation": "at_least", "num": 3}, "don't stop now", "don't stop"),
    ({"type": "length_words", "relation": "less_than", "num": 3}, "two words", "now three words"),
    ({"type": "length_words", "relation": "more_than", "num": 2}, "now three words", "two words"),
    ({"type": "length_sentences", "relation": "exactly", "num": 2}, "It rains. It pours!", "It rains. It pours. Wet?"),
    ({"type": "keywords_include", "keywords": ["moss", "Bark"]}, "Moss grows on bark.", "Moss grows on barking dogs."),
    ({"type": "keywords_exclude", "keywords": ["hot"]}, "The coffee is shot... no, warm.", "The coffee is HOT."),
    ({"type": "keyword_frequency", "keyword": "light", "relation": "at_least", "num": 2},
     "Light in spring, light in June.", "Light and lightning."),
    ({"type": "letter_frequency", "letter": "z", "relation": "at_least", "num": 2}, "A lazy zebra.", "A lazy dog."),
    ({"type": "all_lowercase"}, "all quiet here.", "All quiet here."),
    ({"type": "all_uppercase"}, "GO TEAM, 100%!", "GO team!"),
    ({"type": "capital_word_frequency", "relation": "at_least", "num": 2}, "VERY good and REALLY cheap", "Very Good"),
    ({"type": "json_format"}, '{"name": "Ann", "age": 30}', 'Here it is: {"name": "Ann"}'),
    ({"type": "json_format"}, '```json\n["red", "blue"]\n```', "[red, blue]"),
    ({"type": "bullet_count", "num": 3}, "* a\n* b\n- c", "* a\n* b"),
    ({"type": "bullet_count", "num": 2}, "1. first\n2. second", "1. first\n2. second\n3. third"),
    ({"type": "start_with", "phrase": "My answer is"}, "my answer is banana.", "Banana. My answer is banana."),
    ({"type": "end_with", "phrase": "Is there anything else I can help with?"},
     "Vaccines train immunity. Is there anything else I can help with?", "Is there anything else I can help with? Bye."),
    ({"type": "no_commas"}, "Rain falls and falls.", "Rain, rain, go away."),
    ({"type": "paragraph_count", "num": 2}, "First part.\n***\nSecond part.", "Only one part."),
    ({"type": "title"}, "<<Autumn>>\nLeaves fall", "Autumn\nLeaves fall"),
    ({"type": "postscript", "marker": "P.S."}, "Thanks!\n\nP.S. See you soon.", "Thanks! PS see you."),
    ({"type": "quotation"}, '"A busy station."', 'A "busy" station.'),
    ({"type": "placeholder_count", "num": 2}, "Dear [name], at [address]", "Dear [name], hello"),
    ({"type": "highlight_count", "num": 2}, "Wash *with soap* for *twenty seconds*", "Wash *with soap* well"),
]


@pytest.mark.parametrize("instruction, good, bad", CASES)
def test_checker_on_hand_made_responses(instruction, good, bad):
    assert check_instruction(good, instruction) is True
    assert check_instruction(bad, instruction) is False


def test_every_checker_has_a_hand_made_case():
    assert {case[0]["type"] for case in CASES} == set(CHECKS)


def test_counters():
    assert count_words("Don't stop -- it's 5 o'clock!") == 5
    assert count_sentences("One. Two! Three? Four") == 4
    assert count_sentences("Version 3.5 is out.") == 1
    assert count_sentences("") == 0


def test_loose_accepts_a_chatty_first_line_and_markdown_asterisks():
    instruction = {"type": "all_lowercase"}
    response = "Sure! Here is my answer:\nhere is a lowercase answer."
    assert not check_instruction(response, instruction)
    assert check_instruction(response, instruction, loose=True)
    start = {"type": "start_with", "phrase": "My answer is"}
    assert not check_instruction("**My answer is** banana", start)
    assert check_instruction("**My answer is** banana", start, loose=True)
    assert len(loose_variants("*a*\n*b*\n*c*")) == 8
    assert len(loose_variants("a\nb\nc")) == 4  # identical variants are tried once


def test_loose_does_not_accept_everything():
    assert not check_instruction("Sure!\nAll Upper? No.\nThanks", {"type": "all_uppercase"}, loose=True)


def test_validation_names_the_problem():
    with pytest.raises(ValueError, match="unknown instruction type"):
        validate_instruction({"type": "be_nice"})
    with pytest.raises(ValueError, match="needs argument"):
        validate_instruction({"type": "length_words", "relation": "at_most"})
    with pytest.raises(ValueError, match="unknown relation"):
        validate_instruction({"type": "length_words", "relation": "roughly", "num": 3})


def test_score_responses_prompt_and_instruction_level():
    items = [
        {"id": "a", "prompt": "p", "instructions": [{"type": "all_lowercase"}, {"type": "no_commas"}]},
        {"id": "b", "prompt": "p", "instructions": [{"type": "all_uppercase"}]},
        {"id": "c", "prompt": "p", "instructions": [{"type": "all_lowercase"}], "superseded": [{"type": "all_uppercase"}]},
        {"id": "d", "prompt": "p", "instructions": [{"type": "json_format"}]},
    ]
    responses = {"a": "Sure:\nfine, thanks, bye\nok, then", "b": "YES", "c": "LOUD"}
    result = score_responses(items, responses)
    # a: strict lowercase fails (first line), no_commas fails; loose lowercase passes, commas still fail
    assert result["items"][0]["strict"] == [False, False] and result["items"][0]["loose"] == [True, False]
    assert result["prompt_strict"] == pytest.approx(1 / 4)
    assert result["instruction_strict"] == pytest.approx(1 / 5)
    assert result["instruction_loose"] == pytest.approx(2 / 5)
    assert result["instruction_level"] == pytest.approx(0.3)
    assert result["ecr"] == 1.0  # item c followed the superseded instruction
    assert result["missing_ids"] == ["d"]


def test_shipped_instruction_items_are_valid():
    items = load_items()
    assert len(items) >= 40
    assert len({item["id"] for item in items}) == len(items)
    types = {ins["type"] for item in items for ins in item["instructions"]}
    assert len(types) >= 15
    assert sum("superseded" in item for item in items) >= 5
    for item in items:  # the prompt is spoken: no markup a voice would read out
        assert not any(ch in item["prompt"] for ch in "<>[]*{}#"), item["id"]


def test_load_items_names_file_and_item(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "x1", "prompt": "p", "instructions": [{"type": "nope"}]}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: item x1: "):
        load_items(path)
