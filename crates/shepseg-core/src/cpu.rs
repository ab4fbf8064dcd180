//! Which vector instructions the searches may use: what the CPU has, capped by the
//! `SHEPSEG_MAX_SIMD` environment variable (`scalar`, `avx2` or `avx512`, read once), so that
//! the paths for older CPUs can be benchmarked, or a path ruled out when troubleshooting, on a
//! CPU that has more. Every path gives the same results; only the speed differs.

use std::sync::OnceLock;

/// The environment variable that caps the vector instructions used.
pub const MAX_SIMD_ENV: &str = "SHEPSEG_MAX_SIMD";

/// An instruction set the k-means passes can use, lowest first; every choice gives the same
/// results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Simd {
    /// Any CPU.
    Scalar,
    /// CPUs with AVX2 and FMA.
    Avx2,
    /// CPUs with AVX-512F.
    Avx512,
}

/// The cap set by [`MAX_SIMD_ENV`]; none (the highest level) when unset or not understood.
fn cap() -> Simd {
    static CAP: OnceLock<Simd> = OnceLock::new();
    *CAP.get_or_init(|| {
        match std::env::var(MAX_SIMD_ENV)
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "scalar" => Simd::Scalar,
            "avx2" => Simd::Avx2,
            _ => Simd::Avx512,
        }
    })
}

impl Simd {
    /// Whether this CPU can run it and [`MAX_SIMD_ENV`] allows it.
    pub(crate) fn available(self) -> bool {
        if self > cap() {
            return false;
        }
        match self {
            Simd::Scalar => true,
            Simd::Avx2 => has_avx2_fma(),
            Simd::Avx512 => has_avx512f(),
        }
    }

    /// Every choice available, lowest first.
    pub(crate) fn supported() -> Vec<Self> {
        [Simd::Scalar, Simd::Avx2, Simd::Avx512]
            .into_iter()
            .filter(|s| s.available())
            .collect()
    }

    /// The highest choice available.
    pub(crate) fn best() -> Self {
        Self::supported().pop().unwrap_or(Simd::Scalar)
    }
}

/// Whether the CPU has AVX2 and FMA, whatever [`MAX_SIMD_ENV`] says: what [`Simd::Avx2`]
/// needs. Tests that call the AVX2 kernels directly ask this (not the cap), so that they run
/// them under any cap.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has AVX-512F, whatever [`MAX_SIMD_ENV`] says: what [`Simd::Avx512`] needs.
fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU has FMA, whatever [`MAX_SIMD_ENV`] says. Not a vector instruction set:
/// scalar loops are compiled with it so that `mul_add` is one instruction rather than a call
/// into libm, which gives the same results (fused multiply-add is exactly specified), so the
/// cap does not apply.
pub(crate) fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The vector instructions the k-means searches use on this CPU under the cap: `"AVX-512"`,
/// `"AVX2"` or `"scalar"`, for benchmarks and logs to report what they measured.
pub fn simd_in_use() -> &'static str {
    match Simd::best() {
        Simd::Avx512 => "AVX-512",
        Simd::Avx2 => "AVX2",
        Simd::Scalar => "scalar",
    }
}
