//! x86-64 kernels by instruction set: AVX-512F (`avx512`), AVX2 with FMA (`avx2`), and
//! scalar loops built with FMA (`fma`). Each is safe to call only on a CPU that has its
//! instructions, which [`crate::cpu`] tells.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod fma;
