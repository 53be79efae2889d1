//! The weights preflight check never panics, and what it accepts names a
//! known architecture and every tensor.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veritune_fuzz::preflight::{ARCHITECTURES, preflight};

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = preflight(data) {
        assert!(ARCHITECTURES.contains(&info.architecture.as_str()));
        assert!(info.tensors.windows(2).all(|w| w[0].0 < w[1].0));
    }
});
