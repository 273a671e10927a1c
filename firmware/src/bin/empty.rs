//! The empty firmware code sizes are measured against (DESIGN.md, "Code size on a
//! microcontroller"): startup, the fault and panic handlers and semihosting, with the same
//! host I/O as the model firmware (a file read, formatted lines), and no edgemm.
#![no_std]
#![no_main]

#[path = "../hostfile.rs"]
mod hostfile;
#[path = "../support.rs"]
mod support;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;

#[entry]
fn main() -> ! {
    let mut buf = [0u8; 64];
    match hostfile::read("in0.bin", &mut buf) {
        Ok(n) => hprintln!("read {} bytes", n),
        Err(e) => hprintln!("FAILED: {}", e),
    }
    support::exit(true)
}
