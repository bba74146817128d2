"""Reference values for runner/src/stats, computed with scipy and statsmodels (pinned in
scripts/stats-requirements.txt). Run through scripts/stats-vectors; writes JSON to stdout.

Every case is generated from a fixed seed, so the output is the same on every machine with
the same pins: CI regenerates it and fails when it differs from the committed file.
"""

import json
import math
import sys

import numpy as np
import scipy
import statsmodels
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

CONFIDENCES = (0.95, 0.9)


def weighted(values):
    """Distinct values with counts, sorted: what a histogram gives runner/src/stats."""
    u, c = np.unique(np.asarray(values, dtype=float), return_counts=True)
    return [[float(a), int(b)] for a, b in zip(u, c)]


def hodges_lehmann(x, y, confidence):
    """Median of y_j - x_i, and the order-statistic interval (Hollander & Wolfe)."""
    d = np.sort(np.subtract.outer(np.asarray(y, float), np.asarray(x, float)).ravel())
    n1, n2 = len(x), len(y)
    n = n1 * n2
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    c = max(1, math.floor(n / 2 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12) + 0.5))
    return {
        "confidence": confidence,
        "estimate": float(np.median(d)),
        "lower": float(d[c - 1]),
        "upper": float(d[n - c]),
    }


def mwu_case(name, x, y, hl=True):
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    _, t = np.unique(np.concatenate([x, y]), return_counts=True)
    ties = bool((t > 1).any())
    case = {"name": name, "x": weighted(x), "y": weighted(y), "ties": ties}
    for method in ("asymptotic", "exact", "auto"):
        if method == "exact" and len(x) * len(y) > 4000:
            continue  # scipy's exact distribution: only for small samples
        r = stats.mannwhitneyu(x, y, method=method)
        case[method] = {"u1": float(r.statistic), "p": float(r.pvalue)}
    n1, n2 = len(x), len(y)
    case["auto"]["method"] = "asymptotic" if (n1 > 8 and n2 > 8) or ties else "exact"
    case["probabilityGreater"] = float(stats.mannwhitneyu(y, x).statistic) / (n1 * n2)
    if hl:
        case["hodgesLehmann"] = [hodges_lehmann(x, y, c) for c in CONFIDENCES]
    return case


def histogram_sample(rng, n, median_ms, sigma):
    """Latencies (ms) on the runner's grid (two significant digits), each bucket at its
    midpoint, as the comparison of histograms ranks them."""
    v = rng.lognormal(math.log(median_ms), sigma, n)
    digits = np.floor(np.log10(v))
    scale = 10.0 ** (digits - 1)
    lower = np.floor(v / scale) * scale
    return np.round(lower + scale / 2, 12)


def mwu_cases():
    rng = np.random.default_rng(20261130)
    cases = []
    # Small samples without ties: exact and asymptotic.
    for n1, n2 in [(1, 1), (1, 5), (2, 3), (3, 3), (4, 7), (5, 4), (8, 8), (6, 20), (8, 30), (9, 9)]:
        for shift in (0.0, 1.5):
            x = rng.normal(0, 1, n1)
            y = rng.normal(shift, 1, n2)
            cases.append(mwu_case(f"no-ties n1={n1} n2={n2} shift={shift}", x, y))
    # Small samples with ties (integers): scipy's exact is not corrected for ties, auto
    # picks the asymptotic test.
    for n1, n2, k in [(3, 4, 3), (5, 5, 4), (7, 8, 5), (12, 10, 6), (30, 25, 10)]:
        x = rng.integers(0, k, n1)
        y = rng.integers(0, k, n2)
        cases.append(mwu_case(f"ties n1={n1} n2={n2} values<{k}", x, y))
    # Every value tied; one distinct value each; one sample of one observation.
    cases.append(mwu_case("all tied", [4.0] * 10, [4.0] * 7))
    cases.append(mwu_case("disjoint", [1.0] * 20, [2.0] * 30))
    cases.append(mwu_case("single observation", [3.0], rng.normal(0, 1, 40)))
    # Histograms of latencies: identical, slightly and clearly shifted, different spread.
    for n1, n2, m1, m2, s1, s2 in [
        (200, 200, 10.0, 10.0, 0.3, 0.3),
        (500, 400, 10.0, 10.4, 0.3, 0.3),
        (1000, 1200, 20.0, 22.0, 0.4, 0.4),
        (300, 900, 5.0, 5.0, 0.2, 0.6),
        (50, 60, 100.0, 80.0, 0.5, 0.5),
        (25, 25, 3.0, 3.0, 0.1, 0.1),
    ]:
        x = histogram_sample(rng, n1, m1, s1)
        y = histogram_sample(rng, n2, m2, s2)
        cases.append(mwu_case(f"histogram n1={n1} n2={n2} medians {m1}/{m2}", x, y))
    return cases


def proportion_case(e1, n1, e2, n2):
    case = {"e1": e1, "n1": n1, "e2": e2, "n2": n2}
    if (e1 + e2) in (0, n1 + n2):
        # No variance: chi2_contingency rejects the table; the test is defined as p = 1.
        case["z"] = None
        case["p"] = 1.0
    else:
        table = [[e1, n1 - e1], [e2, n2 - e2]]
        case["p"] = float(stats.chi2_contingency(table, correction=False).pvalue)
        z, _ = proportions_ztest([e2, e1], [n2, n1])
        case["z"] = float(z)
    case["ci"] = []
    for c in CONFIDENCES:
        low, upp = confint_proportions_2indep(
            e2, n2, e1, n1, method="newcomb", compare="diff", alpha=1 - c
        )
        case["ci"].append({"confidence": c, "lower": float(low), "upper": float(upp)})
    return case


def proportion_cases():
    rng = np.random.default_rng(7)
    fixed = [
        (0, 100, 0, 100),
        (0, 100, 1, 100),
        (0, 1000, 10, 1000),
        (5, 50, 5, 50),
        (48, 80, 56, 70),
        (1, 10, 9, 10),
        (10, 10, 10, 10),
        (10, 10, 9, 10),
        (3, 2000, 30, 2500),
        (120, 100000, 150, 100000),
    ]
    drawn = []
    for _ in range(20):
        n1, n2 = (int(v) for v in rng.integers(5, 5000, 2))
        p = float(rng.uniform(0, 0.3))
        e1 = int(rng.binomial(n1, p))
        e2 = int(rng.binomial(n2, p * float(rng.uniform(0.5, 2))))
        drawn.append((e1, n1, e2, n2))
    return [proportion_case(*c) for c in fixed + drawn]


def main():
    out = {
        "generator": "scripts/stats-vectors (scripts/stats_vectors.py)",
        "reference": {
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "statsmodels": statsmodels.__version__,
        },
        "mannWhitney": mwu_cases(),
        "twoProportions": proportion_cases(),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
