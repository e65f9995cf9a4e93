//! The validator never panics, and (oracle) whatever it accepts the reference
//! implementation accepts, with the same tensors.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = zoo_formats::safetensors::validate(data) {
        let reference = safetensors::SafeTensors::deserialize(data)
            .expect("reference refuses what zoo accepts");
        assert_eq!(reference.len(), header.tensors.len());
        for t in &header.tensors {
            let r = reference
                .tensor(&t.name)
                .expect("tensor missing in reference");
            assert_eq!(r.shape(), &t.shape[..]);
            assert_eq!(r.data(), header.tensor_bytes(data, t));
        }
    }
});
