"""The drift statistics, vectorised over NumPy arrays.

Numeric columns compare a sorted reference sample with the sorted current values;
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


def _merged_gap(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples merged in order, and F_ref - F_cur (the CDF gap) at every merged point.

    The two sorted runs merge in near-linear time (a stable sort finds the runs).
    Each reference value lifts the gap by 1/n and each current value lowers it
    by 1/m, so the gap is one cumulative sum, computed in place: far cheaper in
    time and memory than binary searches. Inside a group of equal values the gap
    is partial; callers only read the last point of a group or weight by the
    distance to the next value, which is zero inside a group.
    """
    n, m = len(ref_sorted), len(cur_sorted)
    values = np.concatenate([ref_sorted, cur_sorted])
    order = np.argsort(values, kind="stable")
    values = values[order]
    gap = np.where(order < n, 1.0 / n, -1.0 / m)
    del order
    np.cumsum(gap, out=gap)
    return values, gap


def ks_2samp(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its two-sided p-value.

    The p-value is the asymptotic one for large samples (Smirnov's distribution
    at the effective size ``n*m/(n+m)``, as ``scipy.stats.ks_2samp(method="asymp")``).
    """
    values, gap = _merged_gap(ref_sorted, cur_sorted)
    last_of_group = np.append(values[1:] != values[:-1], True)
    d = float(np.max(np.abs(gap[last_of_group])))
    from scipy.stats import distributions

    n, m = len(ref_sorted), len(cur_sorted)
    big, small = max(n, m), min(n, m)
    effective = round(big * small / (big + small))
    p = float(np.clip(distributions.kstwo.sf(d, effective), 0.0, 1.0))
    return d, p


def wasserstein(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """The first Wasserstein (earth mover's) distance between two sorted samples."""
    values, gap = _merged_gap(ref_sorted, cur_sorted)
    np.abs(gap, out=gap)
    return float(np.dot(gap[:-1], np.diff(values)))


def wasserstein_normed(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> float:
    """Wasserstein distance in units of the reference's standard deviation.

    A constant reference has no spread to measure in: the distance is then 0
    when the current values are that same constant and infinite otherwise.
    """
    distance = wasserstein(ref_sorted, cur_sorted)
    std = float(np.std(ref_sorted))
    if std > 0:
        return distance / std
    return 0.0 if distance == 0 else math.inf


def bin_edges(ref_sorted: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner edges of ``bins`` reference-quantile bins (duplicates removed)."""
    qs = np.quantile(ref_sorted, np.linspace(0, 1, bins + 1)[1:-1])
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
