import pytest

from jstip.scoring.normalize import NORMALIZERS, normalize_text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, World!", "hello world"),
        ("Dr. Smith's patients—about 1,000 of them—took 3.5 mg!", "dr smith's patients about 1,000 of them took 3.5 mg"),
        ("\u201cHello,\u201d she said; \u2018it\u2019s 5 o\u2019clock.\u2019", "hello she said it's 5 o'clock"),
        ("COVID-19 follow-up", "covid 19 follow up"),
        ("U.S.A. e.g. i.e., a.m.", "usa eg ie am"),
        ("students' books 'tis", "students books tis"),
        ("rock 'n' roll", "rock n roll"),
        ("twenty-one 21 twenty one", "twenty one 21 twenty one"),  # numbers are left as written
        ("5% of $30 & A/B", "5 of 30 a b"),
        ("end.Next", "end next"),
        ("Caf\u00e9 \uff26\uff55\uff4c\uff4c \ufb01ne", "caf\u00e9 full fine"),
        ("  many   spaces\tand\nlines  ", "many spaces and lines"),
        ("...", ""),
    ],
)
def test_english_normalizer_examples(text, expected):
    assert normalize_text(text) == expected


def test_normalizer_is_idempotent():
    text = "Dr. O'Neil's U.S. trip (2024): 3.5 days -- 'great'!"
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_none_normalizer_only_collapses_spaces():
    assert NORMALIZERS["none"]("  Mornin'  Bill, ") == "Mornin' Bill,"


def test_english_v2_removes_transcript_markup_and_v1_keeps_it():
    from jstip.scoring.normalize import NORMALIZER_VERSION, NORMALIZERS

    text = "I <hes> went [laughter] to the <unk> store <cutoff-x> a[b]c"
    assert NORMALIZER_VERSION == "english-v2"
    assert NORMALIZERS["english-v2"](text) == "i went to the store a b c"
    assert NORMALIZERS["english-v1"](text) == "i hes went laughter to the unk store cutoff x a b c"


# Expected outputs of the reference implementation (openai-whisper's EnglishTextNormalizer), from the cases of its own
# test suite (openai-whisper, tests/test_normalizer.py): numbers, currencies, British spellings, contractions, titles.
WHISPER_REFERENCE = [
    ("thirty one", "31"),
    ("nineteen ninety nine", "1999"),
    ("two point five million", "2500000"),
    ("200 thousand dollars", "$200000"),
    ("forty three thousand two hundred and sixty", "43260"),
    ("nineteen fifties", "1950s"),
    ("july third twenty twenty", "july 3rd 2020"),
    ("two point two five dollars", "$2.25"),
    ("ninety percent", "90%"),
    ("seventy six per cent", "76%"),
    ("double oh seven", "007"),
    ("two dollars and seventy cents", "$2.70"),
    ("minus 500", "-500"),
    ("b747", "b 747"),
    ("mobilisation", "mobilization"),
    ("Let's", "let us"),
    ("he's like", "he is like"),
    ("she's been like", "she has been like"),
    ("10km", "10 km"),
    ("Mr. Park visited Assoc. Prof. Kim Jr.", "mister park visited associate professor kim junior"),
]


@pytest.mark.parametrize("text,expected", WHISPER_REFERENCE)
def test_the_whisper_normalizer_matches_the_reference_implementation(text, expected):
    assert NORMALIZERS["whisper"](text) == expected


def test_jstip_score_with_the_whisper_normalizer(tmp_path):
    """Writing conventions Whisper's normaliser forgives (numbers spelled out, British spelling, contractions) cost
    nothing under it and are errors under english-v2."""
    import json

    from click.testing import CliRunner

    from jstip.scoring.commands import cli

    ref, hyp = tmp_path / "ref.jsonl", tmp_path / "hyp.jsonl"
    ref.write_text(json.dumps({"id": "a", "text": "Let's paint the colour at 90% by July 3rd 2020."}) + "\n")
    hyp.write_text(json.dumps({"id": "a", "hyp": "let us paint the color at ninety percent by july third twenty "
                                                 "twenty"}) + "\n")
    wers = {}
    for name in ("whisper", "english-v2"):
        res = CliRunner().invoke(cli, ["--ref", str(ref), "--hyp", str(hyp), "--out", str(tmp_path / name),
                                       "--normalizer", name])
        assert res.exit_code == 0, res.output
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["normalizer"] == name
        wers[name] = metrics["wer"]
    assert wers["whisper"] == 0.0 and wers["english-v2"] > 0.3
