"""bench/api_realistic.py's request mix: users drawn Zipf-like over their activity rank."""

import numpy as np

from bench.api_realistic import zipf_cdf


def test_zipf_cdf_puts_the_most_active_users_first() -> None:
    cdf = zipf_cdf(100_000, 1.0)
    assert cdf[-1] == 1.0 and np.all(np.diff(cdf) > 0)
    draws = np.searchsorted(cdf, np.random.default_rng(0).random(20_000), side="right")
    assert (draws < 1000).mean() > 0.5  # the top 1% of users ask more than half of the time
    assert len(np.unique(draws)) > 3000  # and the tail is still asked
    flat = np.searchsorted(zipf_cdf(1000, 0.0), np.random.default_rng(0).random(20_000), side="right")
    assert abs((flat < 500).mean() - 0.5) < 0.03  # exponent 0: uniform
