//! Checkpoint formats with no I/O: everything here works on byte slices (usually memory maps).
//!
//! - [`safetensors`]: the one strict validator and the writer.
//! - [`pickle`]: an inert pickle reader that never imports or calls anything.
//! - [`torch`]: PyTorch zip and legacy checkpoints on top of it.
//! - [`policy`]: the allow-list that decides which pickle imports are safe.
//! - [`scan`]: content sniffing and one verdict per file.

pub mod dtype;
pub mod pickle;
pub mod policy;
pub mod safetensors;
pub mod scan;
pub mod torch;

pub use dtype::Dtype;
