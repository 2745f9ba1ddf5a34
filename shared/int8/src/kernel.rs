//! Which inner-product code runs: the fastest the CPU runs, or the one
//! `PAI_INT8_KERNEL` forces.

use std::sync::OnceLock;

use crate::error::{Int8Error, Result};

/// The environment variable that forces a kernel ([`Kernel::detect`]):
/// `portable`, `avx2`, `vnni` or `amx`; unset or empty, the fastest.
pub const KERNEL_VAR: &str = "PAI_INT8_KERNEL";

/// Which inner-product code runs. Every kernel computes the same integers
/// from the same packed weights, so they differ only in speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// AMX tiles (Intel Advanced Matrix Extensions, Linux).
    Amx,
    /// AVX-512 VNNI.
    Vnni,
    /// AVX2.
    Avx2,
    /// Plain Rust on any CPU (the same integer results).
    Portable,
}

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Self; 4] = [Self::Amx, Self::Vnni, Self::Avx2, Self::Portable];

    /// Returns the kernel `PAI_INT8_KERNEL` names, else the fastest this
    /// CPU runs. The variable is read once per process; a value that names
    /// no kernel, or one this CPU lacks, is logged once as a warning and the
    /// fastest kernel runs instead. (The inference service reads it through
    /// its settings and [`Kernel::choose`], and refuses to start on such a
    /// value.)
    pub fn detect() -> Self {
        static CHOSEN: OnceLock<Kernel> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            // A machine-level switch, like RAYON_NUM_THREADS: read where the
            // kernels are, so tests and benchmarks honour it too.
            let setting = std::env::var(KERNEL_VAR).ok();
            let kernel =
                Self::choose(setting.as_deref(), &Self::available()).unwrap_or_else(|err| {
                    let fastest = Self::fastest();
                    tracing::warn!(error = %err, kernel = %fastest, "{KERNEL_VAR} ignored");
                    fastest
                });
            tracing::debug!(%kernel, "int8 kernel");
            kernel
        })
    }

    /// Returns the fastest kernel this CPU runs, whatever `PAI_INT8_KERNEL`
    /// says.
    pub fn fastest() -> Self {
        Self::available()[0]
    }

    /// Every kernel this CPU (and operating system) runs, fastest first;
    /// [`Kernel::Portable`] always last.
    pub fn available() -> Vec<Self> {
        let mut kernels = Vec::new();
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if crate::amx::usable() {
            kernels.push(Self::Amx);
        }
        #[cfg(target_arch = "x86_64")]
        if crate::vnni::usable() {
            kernels.push(Self::Vnni);
        }
        #[cfg(target_arch = "x86_64")]
        if crate::avx2::usable() {
            kernels.push(Self::Avx2);
        }
        kernels.push(Self::Portable);
        kernels
    }

    /// Returns the kernel a `PAI_INT8_KERNEL` value selects from
    /// `available` (fastest first, as [`Kernel::available`] lists them):
    /// unset or blank, the first; a kernel's name (any case), that kernel
    /// if it is one of them, else [`Int8Error::Unavailable`]; anything
    /// else, [`Int8Error::UnknownKernel`].
    pub fn choose(setting: Option<&str>, available: &[Self]) -> Result<Self> {
        match setting.map(str::trim).filter(|name| !name.is_empty()) {
            None => Ok(available.first().copied().unwrap_or(Self::Portable)),
            Some(name) => name.parse::<Self>()?.among(available),
        }
    }

    /// Returns `self` if it is one of `available` (the portable kernel
    /// always is), else an error naming those there are.
    pub fn among(self, available: &[Self]) -> Result<Self> {
        if self == Self::Portable || available.contains(&self) {
            return Ok(self);
        }
        let names: Vec<&str> = available.iter().map(|kernel| kernel.name()).collect();
        Err(Int8Error::Unavailable {
            kernel: self,
            available: names.join(", "),
        })
    }

    /// The kernel's name, as `PAI_INT8_KERNEL` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Amx => "amx",
            Self::Vnni => "vnni",
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernel {
    type Err = Int8Error;

    fn from_str(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kernel| kernel.name().eq_ignore_ascii_case(value.trim()))
            .ok_or_else(|| Int8Error::UnknownKernel(value.to_owned()))
    }
}
