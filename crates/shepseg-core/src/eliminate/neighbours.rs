//! Which pixels neighbour a pixel, in pyshepseg's order, and which of them is spectrally
//! nearest: the search single-pixel elimination makes for every pixel it moves, and the
//! neighbourhood small-segment elimination lists.

use crate::image::Img;
use crate::pixel::Pixel;

/// Calls `f(q)` for each neighbour `q` of pixel `(i, j)` that is connected to it, rows outer and
/// columns inner (the pixel itself included, as pyshepseg's loops include it).
#[inline(always)]
pub(crate) fn for_each_neighbour(
    rows: usize,
    cols: usize,
    i: usize,
    j: usize,
    four: bool,
    mut f: impl FnMut(usize),
) {
    let p = i * cols + j;
    if four {
        if i > 0 {
            f(p - cols);
        }
        if j > 0 {
            f(p - 1);
        }
        f(p);
        if j + 1 < cols {
            f(p + 1);
        }
        if i + 1 < rows {
            f(p + cols);
        }
        return;
    }
    let i0 = i.saturating_sub(1);
    let i1 = (i + 1).min(rows - 1);
    let j0 = j.saturating_sub(1);
    let j1 = (j + 1).min(cols - 1);
    for ii in i0..=i1 {
        for jj in j0..=j1 {
            f(ii * cols + jj);
        }
    }
}

/// An image's bands as slices (`NB` of them; 0: any count) and its shape and connectivity:
/// what the searches for a pixel's spectrally nearest neighbouring pixel read.
pub(super) struct PixelNeighbours<'a, T, const NB: usize> {
    bands: Vec<&'a [T]>,
    rows: usize,
    cols: usize,
    four: bool,
}

impl<'a, T: Pixel, const NB: usize> PixelNeighbours<'a, T, NB> {
    pub(super) fn new(img: &Img<'a, T>, four: bool) -> Self {
        let n = img.pixels();
        Self {
            bands: img.data.chunks_exact(n.max(1)).take(img.bands).collect(),
            rows: img.rows,
            cols: img.cols,
            four,
        }
    }

    /// The segment of pixel `(i, j)`'s spectrally nearest neighbouring pixel among those whose
    /// segment `qualifies`, in pyshepseg's distance arithmetic and order (rows outer, columns
    /// inner; the first met wins ties), or `None` if none qualifies. The pixel itself is not
    /// looked at: both callers' pixels never qualify. The running minimum is kept by
    /// conditional moves, as which neighbour wins is close to random.
    #[inline(always)]
    pub(super) fn nearest(
        &self,
        seg: &[u32],
        i: usize,
        j: usize,
        qualifies: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let (rows, cols) = (self.rows, self.cols);
        let bands = if NB > 0 {
            &self.bands[..NB]
        } else {
            &self.bands[..]
        };
        let p = i * cols + j;
        let mut min = T::DIST_UNSET;
        let mut found = 0u32;
        let mut any = false;
        let mut consider = |q: usize| {
            let nbr = seg[q];
            let mut d = T::DIST_ZERO;
            for band in bands {
                d = T::add_sq_diff(d, band[p], band[q]);
            }
            let better = qualifies(nbr) && (min < T::DIST_ZERO || d < min);
            min = if better { d } else { min };
            found = if better { nbr } else { found };
            any |= better;
        };
        for_each_neighbour(rows, cols, i, j, self.four, |q| {
            if q != p {
                consider(q);
            }
        });
        any.then_some(found)
    }
}
