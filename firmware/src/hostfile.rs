//! Reading host files through semihosting (SYS_OPEN, SYS_FLEN, SYS_READ, SYS_CLOSE), for the
//! model firmwares: QEMU serves them from its working directory (`-semihosting-config
//! enable=on,target=native`). Include it with `#[path = "../hostfile.rs"] mod hostfile;`.
#![allow(dead_code)]

use cortex_m_semihosting::{nr, syscall};

/// Why a file could not be read.
#[derive(Debug)]
pub enum FileError {
    /// The path is longer than [`PATH_MAX`] bytes.
    PathTooLong,
    /// The host could not open it.
    Open,
    /// Its length could not be read.
    Length,
    /// It does not fit the buffer: (its bytes, the buffer's).
    TooLarge(usize, usize),
    /// Reading stopped short.
    Read,
}

impl core::fmt::Display for FileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FileError::PathTooLong => f.write_str("path too long"),
            FileError::Open => f.write_str("cannot open"),
            FileError::Length => f.write_str("cannot read its length"),
            FileError::TooLarge(len, cap) => write!(f, "{len} bytes, over the {cap}-byte buffer"),
            FileError::Read => f.write_str("short read"),
        }
    }
}

/// The longest path (bytes) [`read`] takes.
pub const PATH_MAX: usize = 512;

/// Reads the host file `path` into the start of `buf`; returns its length.
pub fn read(path: &str, buf: &mut [u8]) -> Result<usize, FileError> {
    let mut z = [0u8; PATH_MAX + 1];
    if path.len() > PATH_MAX {
        return Err(FileError::PathTooLong);
    }
    z[..path.len()].copy_from_slice(path.as_bytes());
    // SAFETY: SYS_OPEN reads the NUL-terminated name (its length given without the NUL).
    let h = unsafe { syscall!(OPEN, z.as_ptr(), nr::open::R_BINARY, path.len()) };
    if h == usize::MAX {
        return Err(FileError::Open);
    }
    let r = read_handle(h, buf);
    // SAFETY: closes the handle opened above.
    unsafe { syscall!(CLOSE, h) };
    r
}

fn read_handle(h: usize, buf: &mut [u8]) -> Result<usize, FileError> {
    // SAFETY: SYS_FLEN takes the handle only.
    let len = unsafe { syscall!(FLEN, h) } as isize;
    if len < 0 {
        return Err(FileError::Length);
    }
    let len = len as usize;
    if len > buf.len() {
        return Err(FileError::TooLarge(len, buf.len()));
    }
    // SAFETY: SYS_READ writes at most `len` bytes into buf (len ≤ buf.len()); it returns the
    // bytes NOT read.
    let left = unsafe { syscall!(READ, h, buf.as_mut_ptr(), len) };
    if left != 0 {
        return Err(FileError::Read);
    }
    Ok(len)
}
