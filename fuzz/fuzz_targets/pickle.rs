//! The inert pickle reader never panics, and the scanner reports every import it read.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let imports = match zoo_formats::pickle::read(data) {
        Ok(p) => {
            assert!(p.len <= data.len());
            // One node per input byte at most, beside the three shared None/True/False nodes.
            assert!(p.nodes.len() <= data.len() + 3);
            p.imports
        }
        Err((_, seen)) => seen,
    };
    let report = zoo_formats::scan::scan_bytes("x.pkl", data);
    for i in imports {
        assert!(
            report
                .imports
                .iter()
                .any(|r| r.module == i.module && r.name == i.name)
        );
    }
});
