//! A borrowed band-major image, the layout every phase of the core reads.

use ndarray::{CowArray, Ix3};

use crate::error::CoreError;
use crate::pixel::Pixel;

/// A band-major image (`bands x rows x cols`, contiguous) with its shape.
pub(crate) struct Img<'a, T> {
    pub data: &'a [T],
    pub bands: usize,
    pub rows: usize,
    pub cols: usize,
}

impl<'a, T: Pixel> Img<'a, T> {
    /// The image an array in standard layout holds (`view.as_standard_layout()`, which copies
    /// only a view not already laid out so).
    pub fn from_standard(standard: &'a CowArray<'_, T, Ix3>) -> Result<Self, CoreError> {
        let (bands, rows, cols) = standard.dim();
        let data = standard.as_slice().ok_or_else(|| {
            CoreError::InvalidParameter("image could not be made contiguous".into())
        })?;
        Ok(Self {
            data,
            bands,
            rows,
            cols,
        })
    }

    /// Value of band `b` at linear pixel index `p` (`row * cols + col`), for the tests'
    /// plain reference implementations.
    #[cfg(test)]
    #[inline(always)]
    pub fn band_value(&self, b: usize, p: usize) -> T {
        self.data[b * self.rows * self.cols + p]
    }

    /// Number of pixels in one band.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }
}
