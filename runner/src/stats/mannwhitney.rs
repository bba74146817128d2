//! The Mann-Whitney U test (two-sided) and the Hodges-Lehmann shift, on samples given as
//! distinct values with multiplicities: `[(value, count)]`. A histogram is such a sample
//! when each bucket stands for one value (its midpoint): observations in one bucket are
//! ties, which the test corrects for exactly as it does for repeated values.

use super::{norm_sf, z_critical, StatsError};

/// How the p-value is computed (scipy's `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MwuMethod {
    /// scipy's choice: `Exact` when one sample has at most 8 observations and there are no
    /// ties, else `Asymptotic`.
    Auto,
    /// Normal approximation with tie correction and continuity correction.
    Asymptotic,
    /// The exact null distribution of U (not corrected for ties, as in scipy: with ties U is
    /// truncated to an integer).
    Exact,
}

/// The result of [`mann_whitney_u`].
#[derive(Clone, Debug, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample (scipy's `statistic`): pairs where x > y, plus half the ties.
    pub u1: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// The standardised statistic (asymptotic method only; infinite when every
    /// observation is tied).
    pub z: Option<f64>,
    /// The method used (never `Auto`).
    pub method: MwuMethod,
    /// Sample sizes.
    pub n1: u64,
    pub n2: u64,
}

/// Sorted distinct finite values with positive counts (equal values merged).
fn canonical(sample: &[(f64, u64)]) -> Result<Vec<(f64, u64)>, StatsError> {
    let mut v: Vec<(f64, u64)> = Vec::with_capacity(sample.len());
    for &(x, c) in sample {
        if c == 0 {
            continue;
        }
        if !x.is_finite() {
            return Err(StatsError::NotFinite);
        }
        v.push((x, c));
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, u64)> = Vec::with_capacity(v.len());
    for (x, c) in v {
        match out.last_mut() {
            // -0.0 and 0.0 are one value.
            Some(last) if last.0 == x => last.1 += c,
            _ => out.push((x, c)),
        }
    }
    if out.is_empty() {
        return Err(StatsError::EmptySample);
    }
    Ok(out)
}

fn total(sample: &[(f64, u64)]) -> u64 {
    sample.iter().map(|s| s.1).sum()
}

/// Rank sum of `x` in the pooled sample (average ranks for ties), the tie term
/// `sum(t^3 - t)` over tie groups, and whether any value is tied.
fn rank_sum(x: &[(f64, u64)], y: &[(f64, u64)]) -> (f64, f64, bool) {
    let (mut i, mut j) = (0, 0);
    let mut seen = 0.0_f64;
    let mut r1 = 0.0_f64;
    let mut tie_term = 0.0_f64;
    let mut ties = false;
    while i < x.len() || j < y.len() {
        let value = match (x.get(i), y.get(j)) {
            (Some(a), Some(b)) => a.0.min(b.0),
            (Some(a), None) => a.0,
            (None, Some(b)) => b.0,
            (None, None) => break,
        };
        let mut cx = 0.0;
        let mut cy = 0.0;
        if let Some(a) = x.get(i).filter(|a| a.0 == value) {
            cx = a.1 as f64;
            i += 1;
        }
        if let Some(b) = y.get(j).filter(|b| b.0 == value) {
            cy = b.1 as f64;
            j += 1;
        }
        let t = cx + cy;
        r1 += cx * (seen + (t + 1.0) / 2.0);
        seen += t;
        if t > 1.0 {
            ties = true;
            tie_term += t * t * t - t;
        }
    }
    (r1, tie_term, ties)
}

/// Two-sided Mann-Whitney U test of `x` against `y` (scipy's `mannwhitneyu(x, y,
/// use_continuity=True, alternative='two-sided', method=...)`).
pub fn mann_whitney_u(
    x: &[(f64, u64)],
    y: &[(f64, u64)],
    method: MwuMethod,
) -> Result<MannWhitney, StatsError> {
    let x = canonical(x)?;
    let y = canonical(y)?;
    let (n1, n2) = (total(&x), total(&y));
    let (r1, tie_term, ties) = rank_sum(&x, &y);
    let (f1, f2) = (n1 as f64, n2 as f64);
    let u1 = r1 - f1 * (f1 + 1.0) / 2.0;
    let u2 = f1 * f2 - u1;
    let u = u1.max(u2);
    let method = match method {
        MwuMethod::Auto if (n1 <= 8 || n2 <= 8) && !ties => MwuMethod::Exact,
        MwuMethod::Auto => MwuMethod::Asymptotic,
        m => m,
    };
    let (p, z) = match method {
        MwuMethod::Exact => (exact_sf(u.trunc() as u64, n1.min(n2), n1.max(n2)), None),
        _ => {
            let n = f1 + f2;
            let mu = f1 * f2 / 2.0;
            let s = (f1 * f2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
            let numerator = u - mu - 0.5;
            let z = if s > 0.0 {
                numerator / s
            } else if numerator < 0.0 {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            (norm_sf(z), Some(z))
        }
    };
    Ok(MannWhitney {
        u1,
        p_value: (2.0 * p).clamp(0.0, 1.0),
        z,
        method,
        n1,
        n2,
    })
}

/// P(U >= k) under the null hypothesis for samples of sizes `m <= n` without ties, summed
/// from the near tail: P(U <= m*n - k) by symmetry (scipy's `_MWU.sf`).
fn exact_sf(k: u64, m: u64, n: u64) -> f64 {
    let mn = m * n;
    let kc = mn.saturating_sub(k);
    let freqs = u_frequencies(m as usize, n as usize, kc.max(k.min(mn)) as usize);
    let all: f64 = binomial(m + n, m);
    if k < kc {
        // (Not reached for the two-sided statistic max(U1, U2) >= m*n/2.)
        let below: f64 = freqs[..k as usize].iter().sum();
        return 1.0 - below / all;
    }
    freqs[..=kc as usize].iter().sum::<f64>() / all
}

/// Number of arrangements giving U = 0..=upto for sizes m, n: the coefficients of the
/// Gaussian binomial [m+n choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i), truncated
/// at degree `upto` (the recurrences only look at lower degrees, so truncation is exact).
fn u_frequencies(m: usize, n: usize, upto: usize) -> Vec<f64> {
    let len = upto + 1;
    let mut c = vec![0.0_f64; len];
    c[0] = 1.0;
    for i in 1..=m {
        let d = n + i;
        for j in (d..len).rev() {
            c[j] -= c[j - d];
        }
        for j in i..len {
            c[j] += c[j - i];
        }
    }
    c
}

/// C(n, k) as a float.
fn binomial(n: u64, k: u64) -> f64 {
    let k = k.min(n - k);
    let mut r = 1.0_f64;
    for i in 0..k {
        r = r * (n - i) as f64 / (i + 1) as f64;
    }
    r.round()
}

/// The common-language effect size: P(Y > X) + P(Y = X) / 2 for random draws X of `x` and
/// Y of `y` (= U of `y` / (n1 n2)).
pub fn probability_greater(x: &[(f64, u64)], y: &[(f64, u64)]) -> Result<f64, StatsError> {
    let r = mann_whitney_u(x, y, MwuMethod::Asymptotic)?;
    let pairs = r.n1 as f64 * r.n2 as f64;
    Ok((pairs - r.u1) / pairs)
}

/// A location shift of `y` relative to `x` with its confidence interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Shift {
    /// The Hodges-Lehmann estimate: the median of all differences y_j - x_i.
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The Hodges-Lehmann shift of `y` relative to `x` (median of the n1 n2 differences
/// `y_j - x_i`; the mean of the two middle ones when n1 n2 is even, as numpy's median) and
/// its distribution-free confidence interval (Hollander & Wolfe): the differences of ranks
/// C and n1 n2 + 1 - C, C = round(n1 n2 / 2 - z sqrt(n1 n2 (n1 + n2 + 1) / 12)) (at least
/// 1), z the two-sided critical value. Without tie correction, so with ties (histogram
/// buckets) the interval is conservative.
pub fn hodges_lehmann(
    x: &[(f64, u64)],
    y: &[(f64, u64)],
    confidence: f64,
) -> Result<Shift, StatsError> {
    let z = z_critical(confidence)?;
    let x = canonical(x)?;
    let y = canonical(y)?;
    let (n1, n2) = (total(&x) as f64, total(&y) as f64);
    let mut diffs: Vec<(f64, f64)> = Vec::with_capacity(x.len() * y.len());
    for &(yv, yc) in &y {
        for &(xv, xc) in &x {
            diffs.push((yv - xv, xc as f64 * yc as f64));
        }
    }
    diffs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pairs = n1 * n2;
    // The k-th smallest difference (1-based, weights are multiplicities).
    let kth = |k: f64| -> f64 {
        let mut seen = 0.0;
        for &(d, w) in &diffs {
            seen += w;
            if seen >= k {
                return d;
            }
        }
        diffs.last().map(|d| d.0).unwrap_or(0.0)
    };
    let estimate = if pairs % 2.0 == 1.0 {
        kth(pairs.div_euclid(2.0) + 1.0)
    } else {
        (kth(pairs / 2.0) + kth(pairs / 2.0 + 1.0)) / 2.0
    };
    let c = (pairs / 2.0 - z * (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt() + 0.5)
        .floor()
        .max(1.0);
    Ok(Shift {
        estimate,
        lower: kth(c),
        upper: kth(pairs + 1.0 - c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: &[f64]) -> Vec<(f64, u64)> {
        v.iter().map(|&x| (x, 1)).collect()
    }

    #[test]
    fn scipy_doc_example_exact_and_asymptotic() {
        // scipy's mannwhitneyu docstring: males vs females (Conover).
        let males = plain(&[19.0, 22.0, 16.0, 29.0, 24.0]);
        let females = plain(&[20.0, 11.0, 17.0, 12.0]);
        let r = mann_whitney_u(&males, &females, MwuMethod::Auto).expect("test");
        assert_eq!(r.u1, 17.0);
        assert_eq!(r.method, MwuMethod::Exact);
        assert!((r.p_value - 0.1111111111111111).abs() < 1e-12, "{r:?}");
        let r = mann_whitney_u(&males, &females, MwuMethod::Asymptotic).expect("test");
        assert!((r.p_value - 0.11134688653314041).abs() < 1e-10, "{r:?}");
    }

    #[test]
    fn weighted_input_equals_repeated_values_and_all_tied_gives_one() {
        let a = mann_whitney_u(
            &[(1.0, 3), (2.0, 1)],
            &[(2.0, 2), (3.0, 2)],
            MwuMethod::Asymptotic,
        )
        .expect("test");
        let b = mann_whitney_u(
            &plain(&[1.0, 2.0, 1.0, 1.0]),
            &[(3.0, 1), (2.0, 1), (3.0, 1), (2.0, 1), (5.0, 0)],
            MwuMethod::Asymptotic,
        )
        .expect("test");
        assert_eq!(a, b);
        let all = mann_whitney_u(&[(4.0, 10)], &[(4.0, 7)], MwuMethod::Auto).expect("test");
        assert_eq!((all.u1, all.p_value), (35.0, 1.0));
        assert_eq!(
            mann_whitney_u(&[(1.0, 0)], &[(1.0, 1)], MwuMethod::Auto),
            Err(StatsError::EmptySample)
        );
        assert_eq!(
            mann_whitney_u(&[(f64::NAN, 1)], &[(1.0, 1)], MwuMethod::Auto),
            Err(StatsError::NotFinite)
        );
    }

    #[test]
    fn hodges_lehmann_of_a_pure_shift() {
        let x = plain(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        let y: Vec<(f64, u64)> = x.iter().map(|&(v, c)| (v + 2.5, c)).collect();
        let s = hodges_lehmann(&x, &y, 0.95).expect("shift");
        assert_eq!(s.estimate, 2.5);
        assert!(s.lower < 2.5 && s.upper > 2.5, "{s:?}");
        let p = probability_greater(&x, &y).expect("cles");
        assert!(p > 0.5 && p < 1.0, "{p}");
    }
}
