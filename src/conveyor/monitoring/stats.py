"""The drift statistics, vectorised over NumPy arrays.

Numeric columns compare a sorted reference sample with the sorted current values
(binary searches and order statistics, never a merge of the two);
categorical columns compare category counts. Every function here is checked
against SciPy's reference implementation in the tests; SciPy itself is used
only for the tail probabilities of the KS and chi-squared distributions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

#: Proportions below this are raised to it before logs and divisions (PSI, JS).
EPSILON = 1e-4
#: Intervals of the larger sample handled at once by ``wasserstein`` (bounds its memory).
_BLOCK = 1 << 18


def ks_2samp(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its two-sided p-value.

    The largest gap between the two empirical CDFs is reached at a value of one
    of the samples; both CDFs at every such value are binary searches into the
    sorted samples (``side="right"`` counts the values ``<=`` it, so ties are
    whole). The p-value is the asymptotic one for large samples (Smirnov's
    distribution at the effective size ``n*m/(n+m)``, as
    ``scipy.stats.ks_2samp(method="asymp")``).
    """
    n, m = len(ref_sorted), len(cur_sorted)
    d = 0.0
    for points in (ref_sorted, cur_sorted):
        gap = np.searchsorted(ref_sorted, points, side="right") / n
        gap -= np.searchsorted(cur_sorted, points, side="right") / m
        d = max(d, float(np.max(np.abs(gap))))
    from scipy.stats import distributions

    big, small = max(n, m), min(n, m)
    effective = round(big * small / (big + small))
    p = float(np.clip(distributions.kstwo.sf(d, effective), 0.0, 1.0))
    return d, p


def wasserstein(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """The first Wasserstein (earth mover's) distance between two sorted samples.

    Computed as the area between the two quantile functions, with no merge or
    sort of the two samples together. The quantile function of a sample of ``n``
    values steps at ``i/n``. Measured in units of ``1/(n*m)``, the smaller
    sample's steps fall every ``m`` and the larger one's every ``n <= m``, so an
    interval of the larger sample holds at most one step of the smaller: the
    ``j``-th interval ``[j*n, (j+1)*n)`` meets the smaller sample's value
    ``small[j*n // m]`` and, past that one step, the next value. Exact integer
    positions, linear time, memory bounded by blocks of ``_BLOCK`` intervals.
    """
    n, m = len(ref_sorted), len(cur_sorted)
    if n == m:  # the steps coincide: the mean absolute difference of the order statistics
        return float(np.mean(np.abs(ref_sorted - cur_sorted)))
    small, large = (ref_sorted, cur_sorted) if n < m else (cur_sorted, ref_sorted)
    n, m = len(small), len(large)
    total = 0.0
    for start in range(0, m, _BLOCK):
        j = np.arange(start, min(start + _BLOCK, m), dtype=np.int64)
        here = large[start : start + len(j)]
        first = j * n // m  # the smaller sample's value where the interval starts
        begin, end = j * n, (j + 1) * n
        step = np.minimum((first + 1) * m, end)  # its next step, if inside the interval
        total += float(np.dot(np.abs(small[first] - here), (step - begin).astype(float)))
        total += float(np.dot(np.abs(small[np.minimum(first + 1, n - 1)] - here), (end - step).astype(float)))
    return total / (n * m)


def wasserstein_normed(ref_sorted: np.ndarray, cur_sorted: np.ndarray, std: float | None = None) -> float:
    """Wasserstein distance in units of the reference's standard deviation (``std``, computed if not given).

    A constant reference has no spread to measure in: the distance is then 0
    when the current values are that same constant and infinite otherwise.
    """
    distance = wasserstein(ref_sorted, cur_sorted)
    if std is None:
        std = float(np.std(ref_sorted))
    if std > 0:
        return distance / std
    return 0.0 if distance == 0 else math.inf


def sorted_quantiles(values_sorted: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """``np.quantile(values, qs)`` (its default, linear method) on values already sorted.

    ``np.quantile`` partitions the data again for every call; on sorted values
    each quantile is two lookups. The interpolation is NumPy's own, term for
    term, so the results are identical, not merely close.
    """
    n = len(values_sorted)
    h = (n - 1) * np.asarray(qs, dtype=float)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    t = h - lo
    a, b = values_sorted[lo], values_sorted[hi]
    diff = b - a
    out = a + diff * t
    upper = t >= 0.5  # NumPy's _lerp: from the upper end when closer to it
    out[upper] = (b - diff * (1 - t))[upper]
    return out


def bin_edges(ref_sorted: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner edges of ``bins`` reference-quantile bins (duplicates removed)."""
    qs = sorted_quantiles(ref_sorted, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def binned_shares(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values in each bin ``[edges[i-1], edges[i])`` (len(edges) + 1 bins).

    On sorted values this is a binary search per edge, not per value.
    """
    below = np.searchsorted(sorted_values, edges, side="left")
    counts = np.diff(np.concatenate([[0], below, [len(sorted_values)]]))
    return counts / max(len(sorted_values), 1)


def psi(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    """Population stability index: sum of (cur - ref) * ln(cur / ref) over bins."""
    r = np.maximum(np.asarray(ref_shares, dtype=float), EPSILON)
    c = np.maximum(np.asarray(cur_shares, dtype=float), EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def aligned_counts(
    ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Both count vectors over the union of categories, reference categories first."""
    categories = list(ref_counts) + [c for c in cur_counts if c not in ref_counts]
    ref = np.array([ref_counts.get(c, 0) for c in categories], dtype=float)
    cur = np.array([cur_counts.get(c, 0) for c in categories], dtype=float)
    return categories, ref, cur


def chi_squared(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Goodness of fit of the current counts to the reference proportions.

    Categories the reference never saw get a tiny expected count instead of
    zero, so a new category makes the statistic large rather than undefined.
    Returns (statistic, p-value) with ``k - 1`` degrees of freedom.
    """
    expected_share = np.maximum(ref / ref.sum(), EPSILON)
    expected_share /= expected_share.sum()
    expected = expected_share * cur.sum()
    stat = float(np.sum((cur - expected) ** 2 / expected))
    dof = max(len(ref) - 1, 1)
    from scipy.stats import distributions

    return stat, float(distributions.chi2.sf(stat, dof))


def jensen_shannon(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon *distance* (natural log), as ``scipy.spatial.distance.jensenshannon``."""
    p = ref / ref.sum()
    q = cur / cur.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    return math.sqrt(max((kl(p) + kl(q)) / 2, 0.0))
