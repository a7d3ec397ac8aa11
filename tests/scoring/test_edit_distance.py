import random
import time

import pytest

from jstip.scoring.edit_distance import (
    ErrorCounts,
    biased_counts,
    char_counts,
    count_errors,
    edit_align,
    edit_align_batch,
)
from jstip.scoring.entity_match import surface_form_found


def reference_alignment(ref, hyp):
    """Plain O(n m) Python dynamic programme with the documented weights and tie order, to check the vectorised one."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    back = [[None] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 and j == 0:
                continue
            if i == 0:
                cost[i][j], back[i][j] = cost[i][j - 1] + 3, "I"
                continue
            if j == 0:
                cost[i][j], back[i][j] = cost[i - 1][j] + 3, "D"
                continue
            best, step = cost[i - 1][j - 1] + (0 if ref[i - 1] == hyp[j - 1] else 4), "X"
            if cost[i][j - 1] + 3 < best:
                best, step = cost[i][j - 1] + 3, "I"
            if cost[i - 1][j] + 3 < best:
                best, step = cost[i - 1][j] + 3, "D"
            cost[i][j], back[i][j] = best, step
    ops, i, j = [], n, m
    while i or j:
        step = back[i][j]
        if step == "X":
            i, j = i - 1, j - 1
            ops.append("C" if ref[i] == hyp[j] else "S")
        elif step == "I":
            j -= 1
            ops.append("I")
        else:
            i -= 1
            ops.append("D")
    return "".join(reversed(ops)), cost[n][m]


def ops(alignment):
    return "".join(p.op for p in alignment)


def test_simple_alignments():
    assert ops(edit_align("a b c".split(), "a b c".split())) == "CCC"
    assert ops(edit_align("a b c".split(), "a x c".split())) == "CSC"
    assert ops(edit_align("a b c".split(), "a c".split())) == "CDC"
    assert ops(edit_align("a c".split(), "a b c".split())) == "CIC"
    assert ops(edit_align([], "a b".split())) == "II"
    assert ops(edit_align("a b".split(), [])) == "DD"
    assert ops(edit_align([], [])) == ""


def test_weights_prefer_deletion_plus_insertion_over_three_substitutions():
    # three substitutions cost 12, a deletion + two matches + an insertion cost 6
    assert ops(edit_align("a b c".split(), "b c d".split())) == "DCCI"


def test_ties_prefer_the_diagonal_then_insertion():
    # "a b" -> "x": S+D and D+S both cost 7; the diagonal is taken at the last cell, so "a" is deleted
    alignment = edit_align("a b".split(), ["x"])
    assert ops(alignment) == "DS"
    assert alignment[1].ref_index == 1 and alignment[1].hyp_index == 0


def test_vectorised_alignment_equals_plain_dynamic_programme():
    rng = random.Random(0)
    pairs = []
    for _ in range(400):
        vocab = list("abcde")[: rng.randint(1, 5)]
        ref = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        pairs.append((ref, hyp))
    got = edit_align_batch(pairs, bucket_cells=2000)  # small buckets: exercise padding across many buckets
    for (ref, hyp), alignment in zip(pairs, got):
        expected_ops, expected_cost = reference_alignment(ref, hyp)
        assert ops(alignment) == expected_ops, (ref, hyp)
        counts = count_errors(alignment)
        assert 4 * counts.subs + 3 * (counts.ins + counts.dels) == expected_cost
        # indices are consistent with the ops
        assert [p.ref_index for p in alignment if p.ref_index is not None] == list(range(len(ref)))
        assert [p.hyp_index for p in alignment if p.hyp_index is not None] == list(range(len(hyp)))


def test_count_errors():
    counts = count_errors(edit_align("the cat sat on the mat".split(), "the bat sat on mat today".split()))
    assert (counts.ref_words, counts.subs, counts.ins, counts.dels) == (6, 1, 1, 1)
    assert counts.rate == pytest.approx(3 / 6)
    assert ErrorCounts().rate is None


def test_b_wer_insertion_counts_only_when_inserted_word_is_a_biasing_word():
    ref = "give metformin now".split()
    biasing = {"metformin", "insulin"}
    # "insulin" inserted: a biasing word -> B-WER insertion
    hyp = "give metformin insulin now".split()
    b, u = biased_counts(edit_align(ref, hyp), ref, hyp, biasing)
    assert (b.ref_words, b.ins, u.ref_words, u.ins) == (1, 1, 2, 0)
    # "please" inserted: not a biasing word -> U-WER insertion
    hyp = "give metformin please now".split()
    b, u = biased_counts(edit_align(ref, hyp), ref, hyp, biasing)
    assert (b.ins, u.ins) == (0, 1)
    # a substituted biasing word is a B-WER substitution, the other words U-WER
    hyp = "give met foreman now".split()
    b, u = biased_counts(edit_align(ref, hyp), ref, hyp, biasing)
    assert (b.subs, b.ins, u.subs, u.ins) == (1, 0, 0, 1)


def test_char_counts():
    counts = char_counts("abc", "abd")
    assert (counts.ref_words, counts.subs) == (3, 1)
    assert char_counts("", "").rate is None


def test_surface_form_rules():
    assert surface_form_found("Smith", "Smith")
    assert surface_form_found("Smith", "Smith,")
    assert surface_form_found("Smith", "(Smith).")
    assert surface_form_found("Smith", "Smith's", ref_suffix="'s")
    assert not surface_form_found("Smith", "smith")
    assert not surface_form_found("Smith", "Smyth")
    assert not surface_form_found("Smith", "Smithson")
    assert not surface_form_found("New York", "New Yorker")


def test_alignment_is_fast_enough_for_large_test_sets():
    rng = random.Random(1)
    words = [f"w{i}" for i in range(2000)]
    pairs = []
    for _ in range(5000):
        ref = [rng.choice(words) for _ in range(rng.randint(5, 40))]
        hyp = [w if rng.random() > 0.1 else rng.choice(words) for w in ref]
        pairs.append((ref, hyp))
    start = time.perf_counter()
    edit_align_batch(pairs)
    elapsed = time.perf_counter() - start
    # about 0.3 s on a shared two-core machine; a pure-Python table would take ~10 s
    assert elapsed < 5, elapsed
