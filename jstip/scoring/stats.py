"""Statistics shared by the report and the spoken-task scores."""

from __future__ import annotations

import numpy as np


def paired_bootstrap(
    errors_a: np.ndarray, errors_b: np.ndarray, totals: np.ndarray, num_samples: int = 1000, seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float, float]:
    """Paired bootstrap over utterances of the difference of two error rates (sum errors / sum totals).

    Args:
        errors_a, errors_b: (N,) errors per utterance of the two systems on the same utterances.
        totals: (N,) reference units per utterance (words, or entity instances).
        num_samples: bootstrap samples; each draws N utterances with replacement, the same ones for both systems.

    Returns:
        (delta, low, high, p_b_better): rate B minus rate A on the full set, the percentile interval, and the share
        of samples where B's rate is strictly below A's.
    """
    totals = np.asarray(totals, dtype=np.float64)
    difference = np.asarray(errors_b, dtype=np.float64) - np.asarray(errors_a, dtype=np.float64)
    value, low, high, below = bootstrap_ratios(difference[None], totals[None], num_samples, seed, confidence)
    return float(value[0]), float(low[0]), float(high[0]), float(below[0])


def bootstrap_ratios(
    numerators: np.ndarray, denominators: np.ndarray, num_samples: int = 1000, seed: int = 0,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap over utterances of several ratios (sum numerators / sum denominators) at once.

    Every bootstrap sample draws N utterances with replacement and uses the same draw for every ratio, so ratios
    built on the same utterances (two systems, or a difference of two systems as its numerator) stay paired.

    Args:
        numerators: (M, N) per ratio and utterance, e.g. errors (or the difference of two systems' errors).
        denominators: (M, N) per ratio and utterance, e.g. reference words or entity instances.
        num_samples: bootstrap samples.

    Returns:
        (value, low, high, p_below_zero), each (M,): the ratio on the full set, the percentile interval, and the
        share of samples below 0 (for a difference: how often the second system was better). NaN where a ratio
        has no denominator.
    """
    num = np.atleast_2d(np.asarray(numerators, dtype=np.float64))
    den = np.atleast_2d(np.asarray(denominators, dtype=np.float64))
    if num.shape != den.shape:
        raise ValueError(f"numerators {num.shape} and denominators {den.shape} differ in shape")
    m, n = num.shape
    nan = np.full(m, np.nan)
    if n == 0:
        return nan, nan.copy(), nan.copy(), nan.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        value = num.sum(axis=1) / den.sum(axis=1)
    value[den.sum(axis=1) == 0] = np.nan
    rng = np.random.default_rng(seed)
    samples = []
    chunk = max(1, 2_000_000 // n)
    for start in range(0, num_samples, chunk):
        size = min(chunk, num_samples - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)  # (size, N) draw counts
        with np.errstate(invalid="ignore", divide="ignore"):
            samples.append((weights @ num.T) / (weights @ den.T))  # (size, M)
    drawn = np.concatenate(samples)  # (num_samples, M)
    drawn[~np.isfinite(drawn)] = np.nan
    alpha = (1 - confidence) / 2
    low, high, below = nan.copy(), nan.copy(), nan.copy()
    for j in range(m):
        column = drawn[:, j][np.isfinite(drawn[:, j])]
        if len(column) and np.isfinite(value[j]):
            low[j], high[j] = np.quantile(column, [alpha, 1 - alpha])
            below[j] = float(np.mean(column < 0))
    return value, low, high, below
