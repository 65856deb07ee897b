"""Every drift statistic agrees with SciPy's reference implementation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from conveyor.monitoring import stats

BIKES = Path(__file__).parents[3] / "examples" / "data" / "bike_sharing_hourly.csv"


@pytest.fixture(scope="module")
def bikes() -> pd.DataFrame:
    return pd.read_csv(BIKES)


SAMPLES = [
    ("normal-shifted", lambda r: (r.normal(0, 1, 700), r.normal(0.3, 1.2, 900))),
    ("same", lambda r: (r.normal(5, 2, 2000), r.normal(5, 2, 1500))),
    ("ties", lambda r: (r.integers(0, 5, 400).astype(float), r.integers(0, 6, 300).astype(float))),
    ("tiny", lambda r: (r.exponential(1, 8), r.exponential(2, 5))),
    ("equal-sizes", lambda r: (r.normal(0, 1, 1000), r.normal(0.1, 1, 1000))),
    ("one-value", lambda r: (r.normal(0, 1, 1), r.normal(0, 1, 300))),
    ("coprime-ties", lambda r: (r.integers(0, 3, 997).astype(float), r.integers(1, 4, 1009).astype(float))),
]


@pytest.mark.parametrize(("name", "make"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_ks_and_wasserstein_match_scipy_on_random_samples(name: str, make: object) -> None:
    a, b = make(np.random.default_rng(7))  # type: ignore[operator]
    d, p = stats.ks_2samp(np.sort(a), np.sort(b))
    ref = sps.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, rel=1e-9)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert stats.wasserstein(np.sort(a), np.sort(b)) == pytest.approx(sps.wasserstein_distance(a, b), rel=1e-9)


@pytest.mark.parametrize("column", ["cnt", "temp", "hum", "windspeed"])
def test_ks_and_wasserstein_match_scipy_on_bike_sharing(bikes: pd.DataFrame, column: str) -> None:
    a = bikes.loc[bikes.yr == 0, column].to_numpy(float)
    b = bikes.loc[bikes.yr == 1, column].to_numpy(float)
    d, p = stats.ks_2samp(np.sort(a), np.sort(b))
    ref = sps.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, rel=1e-9)
    assert p == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)
    expected = sps.wasserstein_distance(a, b) / np.std(a)
    assert stats.wasserstein_normed(np.sort(a), np.sort(b)) == pytest.approx(expected, rel=1e-9)


def test_constant_reference_gives_zero_or_infinite_normed_distance() -> None:
    ref = np.full(50, 3.0)
    assert stats.wasserstein_normed(ref, np.full(20, 3.0)) == 0.0
    assert math.isinf(stats.wasserstein_normed(ref, np.full(20, 4.0)))


def test_chi_squared_matches_scipy_chisquare() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(50, 500, 6).astype(float)
    cur = rng.integers(50, 500, 6).astype(float)
    stat, p = stats.chi_squared(ref, cur)
    expected = ref / ref.sum() * cur.sum()
    want = sps.chisquare(cur, f_exp=expected)
    assert stat == pytest.approx(want.statistic, rel=1e-9)
    assert p == pytest.approx(want.pvalue, rel=1e-9)


def test_a_category_the_reference_never_saw_makes_chi_squared_large_not_undefined() -> None:
    stat, p = stats.chi_squared(np.array([100.0, 100.0, 0.0]), np.array([90.0, 90.0, 20.0]))
    assert math.isfinite(stat) and stat > 1000 and p < 1e-6


def test_jensen_shannon_matches_scipy(bikes: pd.DataFrame) -> None:
    a = bikes.loc[bikes.yr == 0, "weathersit"].value_counts()
    b = bikes.loc[bikes.yr == 1, "weathersit"].value_counts()
    cats, ref, cur = stats.aligned_counts(
        {str(k): int(v) for k, v in a.items()}, {str(k): int(v) for k, v in b.items()}
    )
    assert stats.jensen_shannon(ref, cur) == pytest.approx(jensenshannon(ref, cur), rel=1e-9)
    rng = np.random.default_rng(1)
    p, q = rng.random(40), rng.random(40)
    assert stats.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q), rel=1e-9)


def test_psi_by_hand_and_bins_from_reference_quantiles() -> None:
    ref, cur = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    by_hand = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert stats.psi(ref, cur) == pytest.approx(by_hand)
    assert stats.psi(ref, ref) == 0.0
    sample = np.sort(np.random.default_rng(0).normal(size=10_000))
    shares = stats.binned_shares(sample, stats.bin_edges(sample))
    assert len(shares) == 10 and np.allclose(shares, 0.1, atol=0.002)


@pytest.mark.parametrize("size", [1, 2, 10, 11, 999, 100_000])
def test_quantiles_of_sorted_values_are_numpys_exactly(size: int) -> None:
    values = np.sort(np.random.default_rng(size).standard_t(3, size))
    qs = np.linspace(0, 1, 11)[1:-1]
    assert np.array_equal(stats.sorted_quantiles(values, qs), np.quantile(values, qs))
    ties = np.sort(np.random.default_rng(size).integers(0, 4, size).astype(float))
    assert np.array_equal(stats.sorted_quantiles(ties, qs), np.quantile(ties, qs))


@pytest.mark.parametrize(("n", "m"), [(1_000, 600_000), (600_000, 999), (250_000, 250_000)])
def test_wasserstein_over_several_blocks_matches_scipy(n: int, m: int) -> None:
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(0, 1, n), rng.gamma(2, 1, m)
    assert stats.wasserstein(np.sort(a), np.sort(b)) == pytest.approx(sps.wasserstein_distance(a, b), rel=1e-9)
