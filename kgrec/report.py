"""The online report's figures (``kgrec report``): per variant, CTR and conversion rate with 95% Wilson intervals,
and each variant's difference from a baseline with a 95% interval (Newcombe's hybrid score interval for a
difference of two independent proportions, built from the two Wilson intervals; it stays inside [-1, 1] and is
reliable for small counts where the plain normal interval is not).

The unit is the impression (an item shown in a list): CTR = distinct shown items clicked / items shown. Impressions
of one user are not independent, so with few users the intervals are too narrow; read them as a guide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from graph.reads import VariantFigures

#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0, 1) without trials.

    >>> [round(x, 4) for x in wilson(10, 100)]
    [0.0552, 0.1744]
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def difference(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """``p2 - p1`` and its interval by Newcombe's method 10 (hybrid score, from the two Wilson intervals); the example
    is Newcombe's (1998), whose interval is -0.3339 to -0.0524.

    >>> [round(v, 4) for v in difference(56, 70, 48, 80)]
    [-0.2, -0.3339, -0.0524]
    """
    p1 = x1 / n1 if n1 else 0.0
    p2 = x2 / n2 if n2 else 0.0
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p2 - p1
    return d, d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2), d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)


@dataclass(frozen=True)
class VariantRow:
    """One variant's line of the report."""

    variant: str
    lists: int
    impressions: int
    clicks: int
    ctr: float
    ctr_low: float
    ctr_high: float
    conversions: int
    conversion_rate: float
    conversion_low: float
    conversion_high: float
    #: CTR minus the baseline's, with its interval (None for the baseline itself)
    ctr_diff: float | None = None
    ctr_diff_low: float | None = None
    ctr_diff_high: float | None = None


def build_report(figures: list[VariantFigures], baseline: str | None = None) -> list[VariantRow]:
    """The report's rows, the baseline first (``baseline``, else ``default`` when present, else the first by name).

    Raises:
        ValueError: ``baseline`` names no variant with lists.
    """
    if not figures:
        return []
    by_name = {f.variant: f for f in figures}
    if baseline is not None and baseline not in by_name:
        raise ValueError(f"no lists of variant {baseline!r}; variants: {', '.join(sorted(by_name))}")
    base = by_name[baseline] if baseline else by_name.get("default", figures[0])
    rows = []
    for f in [base] + [f for f in figures if f is not base]:
        ctr_low, ctr_high = wilson(f.clicks, f.impressions)
        conv_low, conv_high = wilson(f.conversions, f.impressions)
        diff: tuple[float | None, float | None, float | None] = (None, None, None)
        if f is not base:
            diff = difference(base.clicks, base.impressions, f.clicks, f.impressions)
        rows.append(
            VariantRow(
                f.variant,
                f.lists,
                f.impressions,
                f.clicks,
                f.clicks / f.impressions if f.impressions else 0.0,
                ctr_low,
                ctr_high,
                f.conversions,
                f.conversions / f.impressions if f.impressions else 0.0,
                conv_low,
                conv_high,
                *diff,
            )
        )
    return rows


def as_json(rows: list[VariantRow]) -> list[dict[str, object]]:
    """The rows as JSON-ready dicts."""
    return [asdict(r) for r in rows]


__all__ = ["Z95", "VariantRow", "as_json", "build_report", "difference", "wilson"]
