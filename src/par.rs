//! How many threads a call may use.

/// Parallelism of one call.
///
/// Results do not depend on it: edgemm never splits the k dimension across threads, so every
/// element of C sees the same sequence of operations whatever the thread count (for a fixed
/// kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Par {
    /// The calling thread only.
    #[default]
    Seq,
    /// Up to `n` threads, the caller included. Small problems use fewer (a thread costs more
    /// than it saves below a few hundred thousand multiply-adds). Without the `std` feature
    /// this runs sequentially.
    Threads(usize),
}

impl Par {
    /// The thread count asked for (`Seq` is 1).
    pub fn threads(self) -> usize {
        match self {
            Par::Seq => 1,
            Par::Threads(n) => n,
        }
    }

    /// All cores the OS reports (1 without `std`).
    pub fn all_cores() -> Par {
        #[cfg(feature = "std")]
        {
            Par::Threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
        }
        #[cfg(not(feature = "std"))]
        {
            Par::Seq
        }
    }
}
