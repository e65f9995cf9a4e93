//! PyTorch checkpoint parsing (zip and legacy) never panics or reads out of bounds; every
//! tensor it yields has exactly shape × dtype bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ckpt) = zoo_formats::torch::TorchCheckpoint::parse(data) {
        for t in &ckpt.tensors {
            if let Ok(bytes) = ckpt.tensor_bytes(t) {
                assert_eq!(bytes.len(), t.numel() * t.dtype.size());
            }
        }
    }
});
