//! scikit-learn's k-means arithmetic, reproduced to the last bit.
//!
//! scikit-learn assigns a point to the centre with the smallest `|c|^2 - 2 x.c`, not the
//! smallest distance. On integer imagery many points are *exactly* equidistant from two centres
//! (the diagonal initial centres are integers too), and then the rounding of that expression
//! decides the label. So these functions compute it the way scikit-learn's compiled code does,
//! which was established by comparing bit patterns against scikit-learn 1.9 / numpy 2.4:
//!
//! * `x.c` comes from BLAS `dgemm`: a sequential fused multiply-add over the bands;
//! * `|c|^2` comes from `np.einsum("ij,ij->i")`: two SIMD lanes (even and odd bands) of plain
//!   multiply-then-add, four lane-steps unrolled, then the two lanes added;
//! * centre shifts use scikit-learn's `_euclidean_dense_dense` (four bands a step).

/// `x.c` as BLAS `dgemm` computes it: `fma(x[k], c[k], acc)` for k = 1.., from `x[0] * c[0]`.
#[inline(always)]
pub(crate) fn dot(x: &[f64], c: &[f64]) -> f64 {
    let mut acc = x[0] * c[0];
    for k in 1..x.len() {
        acc = x[k].mul_add(c[k], acc);
    }
    acc
}

/// `|c|^2` as numpy's `einsum("ij,ij->i", c, c)` computes it (two lanes, no FMA).
pub(crate) fn sq_norm(c: &[f64]) -> f64 {
    let n = c.len();
    let mut lanes = [0.0f64; 2];
    let mut i = 0;
    while n - i >= 8 {
        for (l, lane) in lanes.iter_mut().enumerate() {
            let mut acc = *lane;
            for k in [3, 2, 1, 0] {
                let v = c[i + 2 * k + l];
                acc += v * v;
            }
            *lane = acc;
        }
        i += 8;
    }
    while i < n {
        for (l, lane) in lanes.iter_mut().enumerate() {
            if let Some(&v) = c.get(i + l) {
                *lane += v * v;
            }
        }
        i += 2;
    }
    lanes[0] + lanes[1]
}

/// scikit-learn's assignment score `|c|^2 - 2 x.c`, given `|c|^2`.
#[inline(always)]
pub(crate) fn score(x: &[f64], c: &[f64], c_sq_norm: f64) -> f64 {
    c_sq_norm + -2.0 * dot(x, c)
}

/// Euclidean distance as scikit-learn's `_euclidean_dense_dense` sums it (four bands a step).
pub(crate) fn euclidean(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len();
    let mut result = 0.0;
    let mut i = 0;
    while i + 4 <= n {
        let d = |k: usize| (a[i + k] - b[i + k]) * (a[i + k] - b[i + k]);
        result += ((d(0) + d(1)) + d(2)) + d(3);
        i += 4;
    }
    while i < n {
        result += (a[i] - b[i]) * (a[i] - b[i]);
        i += 1;
    }
    result.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_lane_order() {
        // Four values: (c0^2 + c2^2) + (c1^2 + c3^2).
        let c = [1e8, 1.0, -1e8, 1.0];
        assert_eq!(sq_norm(&c), (1e16 + 1e16) + (1.0 + 1.0));
        let c: Vec<f64> = (0..11).map(|v| v as f64 * 0.37).collect();
        let plain: f64 = c.iter().map(|v| v * v).sum();
        assert!((sq_norm(&c) - plain).abs() < 1e-12);
    }

    #[test]
    fn dot_is_fused() {
        let e = f64::EPSILON;
        let x = [1.0, 1.0 + e];
        let c = [-1.0, 1.0 - e];
        // fma keeps the -e^2 that a separate multiply would round away.
        assert_eq!(dot(&x, &c), -e * e);
    }

    #[test]
    fn euclidean_matches_plain() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [0.0; 5];
        assert_eq!(euclidean(&a, &b), 55f64.sqrt());
    }
}
