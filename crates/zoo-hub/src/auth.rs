//! Tokens: printed once, stored as their sha256, looked up by hash.

use sha2::{Digest, Sha256};

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub user: String,
    pub write: bool,
    pub display_name: String,
}

/// A new token: `zoo_` and 40 random alphanumerics.
pub fn new_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut body = String::with_capacity(40);
    while body.len() < 40 {
        let mut bytes = [0u8; 64];
        getrandom::fill(&mut bytes).expect("the OS random source");
        // Rejection sampling: 248 = 4 × 62, so every character is equally likely.
        for b in bytes.into_iter().filter(|&b| b < 248) {
            if body.len() < 40 {
                body.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    format!("zoo_{body}")
}

/// What is stored: the token's sha256.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
