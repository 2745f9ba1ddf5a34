//! The kernels' errors: a layer of the wrong shape, or a kernel that cannot
//! be chosen.

use crate::Kernel;

pub type Result<T, E = Int8Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Int8Error {
    /// The weights and biases do not make the layer's shape.
    #[error("{0}")]
    Shape(String),
    /// A kernel name that is none of `portable`, `avx2`, `vnni`, `amx`.
    #[error("unknown int8 kernel {0:?}: expected portable, avx2, vnni or amx")]
    UnknownKernel(String),
    /// A kernel this CPU (or operating system) does not run.
    #[error("the {kernel} kernel does not run on this CPU, which runs {available}")]
    Unavailable { kernel: Kernel, available: String },
}
