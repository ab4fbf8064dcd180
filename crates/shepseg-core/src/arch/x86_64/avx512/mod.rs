//! Kernels for CPUs with AVX-512F ([`crate::cpu::Simd::Avx512`]): 512-bit vectors.

pub(crate) mod kmeanspp;
pub(crate) mod lloyd;
pub(crate) mod predict;
pub(crate) mod screen;
