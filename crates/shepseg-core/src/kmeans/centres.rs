//! Centre geometry the nearest-centre searches share (prediction's pruned search and Lloyd's
//! assignment): each centre's neighbours sorted by distance, half the gap to the nearest, plain
//! distances for the pruning bounds, and the centres padded for the vector scans.

/// For each centre (`k x nb`, row-major), every centre sorted by distance from it, itself
/// first, ties by index: the pruned searches scan these lists outward.
pub(crate) fn by_distance(centres: &[f64], nb: usize) -> Vec<Vec<(f64, u32)>> {
    let c = |j: usize| &centres[j * nb..(j + 1) * nb];
    let k = centres.len() / nb;
    (0..k)
        .map(|g| {
            let mut v: Vec<(f64, u32)> = (0..k).map(|j| (distance(c(g), c(j)), j as u32)).collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            v
        })
        .collect()
}

/// Half the distance from each centre to its nearest other centre (infinity for a lone
/// centre), from [`by_distance`]'s lists: a point nearer than that to a centre has it as its
/// unique nearest.
pub(crate) fn half_gaps(by_distance: &[Vec<(f64, u32)>]) -> Vec<f64> {
    by_distance
        .iter()
        .map(|v| v.get(1).map_or(f64::INFINITY, |g| 0.5 * g.0))
        .collect()
}

/// Plain Euclidean distance (for pruning bounds, not for decisions).
#[inline(always)]
pub(crate) fn distance(a: &[f64], b: &[f64]) -> f64 {
    sq_distance(a, b).sqrt()
}

/// Plain squared Euclidean distance.
#[inline(always)]
pub(crate) fn sq_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |s, (x, y)| s + (x - y) * (x - y))
}

/// Centres laid out for the vector searches: band by band (`soa[b * kp + j]`, zeros in the
/// padding) and their `|c|^2` (`norms`, infinity in the padding, so padding never wins), both
/// padded to `kp` centres, a multiple of the vector width asked for.
#[derive(Debug, Clone)]
pub(crate) struct PaddedCentres {
    soa: Vec<f64>,
    norms: Vec<f64>,
    kp: usize,
}

impl PaddedCentres {
    /// `centres` (`k x nb`, row-major) with their `norms`, padded to a multiple of `multiple`
    /// (4 or 8: four or eight `f64` a vector).
    pub(crate) fn new(centres: &[f64], nb: usize, norms: &[f64], multiple: usize) -> Self {
        assert!(multiple == 4 || multiple == 8, "vector width {multiple}");
        let k = norms.len();
        let kp = k.div_ceil(multiple) * multiple;
        let mut soa = vec![0.0; nb * kp];
        let mut padded = vec![f64::INFINITY; kp];
        for (j, c) in centres.chunks_exact(nb).enumerate() {
            for (b, v) in c.iter().enumerate() {
                soa[b * kp + j] = *v;
            }
            padded[j] = norms[j];
        }
        Self {
            soa,
            norms: padded,
            kp,
        }
    }

    /// The view the vector searches score `NB`-band points against, `W` centres (4 or 8) a
    /// vector. Panics unless the centres were padded to a multiple of `W`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(crate) fn view<const NB: usize, const W: usize>(&self) -> CentreView<'_, NB, W> {
        assert!(self.kp.is_multiple_of(W), "centres padded to {}", self.kp);
        CentreView {
            soa: &self.soa[..NB * self.kp],
            norms: &self.norms[..self.kp],
            kp: self.kp,
        }
    }
}

/// [`PaddedCentres`] as the vector searches read them, `W` centres a vector: `NB` rows, lengths
/// checked once when the view is made, so the loads of the kernels' `scores` need no checks in the
/// inner loops.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct CentreView<'a, const NB: usize, const W: usize> {
    /// `NB * kp` values.
    pub(crate) soa: &'a [f64],
    /// `kp` values.
    pub(crate) norms: &'a [f64],
    /// A multiple of `W` ([`PaddedCentres::view`] checks it).
    pub(crate) kp: usize,
}

#[cfg(target_arch = "x86_64")]
impl<const NB: usize, const W: usize> CentreView<'_, NB, W> {
    /// Vectors of `W` centres.
    #[inline(always)]
    pub(crate) fn chunks(&self) -> usize {
        self.kp / W
    }

    /// Where band `b` of centres `W c .. W c + W` starts in `soa`. Panics if `c` is not below
    /// [`CentreView::chunks`]; then, for `b < NB`, `W` values from there lie inside `soa` and
    /// `W` from `c * W` inside `norms`.
    #[inline(always)]
    pub(crate) fn checked(&self, c: usize) -> usize {
        assert!(c < self.chunks());
        c * W
    }
}
