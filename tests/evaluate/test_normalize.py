import pytest

from jstip.evaluate.normalize import NORMALIZERS, normalize_text


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
    from jstip.evaluate.normalize import NORMALIZER_VERSION, NORMALIZERS

    text = "I <hes> went [laughter] to the <unk> store <cutoff-x> a[b]c"
    assert NORMALIZER_VERSION == "english-v2"
    assert NORMALIZERS["english-v2"](text) == "i went to the store a b c"
    assert NORMALIZERS["english-v1"](text) == "i hes went laughter to the unk store cutoff x a b c"
