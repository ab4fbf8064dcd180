//! Which vector instructions the searches may use: what the CPU has, capped by the
//! `SHEPSEG_MAX_SIMD` environment variable (`scalar`, `avx2` or `avx512`, read once), so that
//! the paths for older CPUs can be benchmarked, or a path ruled out when troubleshooting, on a
//! CPU that has more. Every path gives the same results; only the speed differs.

use std::sync::OnceLock;

/// The environment variable that caps the vector instructions used.
pub const MAX_SIMD_ENV: &str = "SHEPSEG_MAX_SIMD";

/// Instruction-set levels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Scalar,
    Avx2,
    Avx512,
}

/// The cap set by [`MAX_SIMD_ENV`]; none (the highest level) when unset or not understood.
fn cap() -> Level {
    static CAP: OnceLock<Level> = OnceLock::new();
    *CAP.get_or_init(|| {
        match std::env::var(MAX_SIMD_ENV)
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "scalar" => Level::Scalar,
            "avx2" => Level::Avx2,
            _ => Level::Avx512,
        }
    })
}

/// Whether the AVX-512 (foundation) paths may run: the CPU has them and the cap allows them.
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cap() >= Level::Avx512 && std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the AVX2 paths (which also use FMA) may run: the CPU has both and the cap allows
/// them.
pub(crate) fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        cap() >= Level::Avx2
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The vector instructions the k-means searches use on this CPU under the cap: `"AVX-512"`,
/// `"AVX2"` or `"scalar"`, for benchmarks and logs to report what they measured.
pub fn simd_in_use() -> &'static str {
    if avx512() {
        "AVX-512"
    } else if avx2_fma() {
        "AVX2"
    } else {
        "scalar"
    }
}
