//! A borrowed band-major image, the layout every phase of the core reads.

use crate::pixel::Pixel;

/// A band-major image (`bands x rows x cols`, contiguous) with its shape.
pub(crate) struct Img<'a, T> {
    pub data: &'a [T],
    pub bands: usize,
    pub rows: usize,
    pub cols: usize,
}

impl<T: Pixel> Img<'_, T> {
    /// Value of band `b` at linear pixel index `p` (`row * cols + col`).
    #[inline(always)]
    pub fn band_value(&self, b: usize, p: usize) -> T {
        self.data[b * self.rows * self.cols + p]
    }

    /// Number of pixels in one band.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }
}
