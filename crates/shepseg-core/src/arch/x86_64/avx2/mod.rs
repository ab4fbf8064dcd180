//! Kernels for CPUs with AVX2 and FMA ([`crate::cpu::Simd::Avx2`]): 256-bit vectors.

pub(crate) mod kmeanspp;
pub(crate) mod lloyd;
pub(crate) mod predict;
pub(crate) mod screen;
