//! Kernels written with one CPU's instructions, grouped by instruction set as memchr groups
//! its own: each is the vector form of a portable loop elsewhere in the crate and gives the same
//! results, and its callers choose it through [`crate::cpu`].

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;
