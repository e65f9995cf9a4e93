//! Xet xorbs (issue 16): any bytes are parsed or refused; when the chunks parse, the xorb
//! is accepted under the hash they give, and every chunk decompresses to its recorded length.
#![no_main]
use libfuzzer_sys::fuzz_target;
use zoo_hub::xet::{Hash, XetError, chunk_data, parse_xorb};

fuzz_target!(|data: &[u8]| {
    match parse_xorb(data, &Hash::default()) {
        Err(XetError::HashMismatch { found, .. }) => {
            let xorb = parse_xorb(data, &found).expect("accepted under its own hash");
            for c in &xorb.chunks {
                let bytes = chunk_data(data, c).expect("a parsed chunk decompresses");
                assert_eq!(bytes.len(), c.len as usize);
            }
        }
        Ok(_) | Err(_) => {}
    }
});
