//! The upload half of the Xet protocol (hub-docs, "Xet Protocol Specification"), as pure
//! functions on bytes: the hashes (chunk, xorb Merkle root, term verification), the xorb
//! format (chunks behind an 8-byte header, stored as is, as an LZ4 frame, or byte-grouped by
//! four then LZ4) and the file-info section of a shard. The routes that use it are in
//! `server::xet`.
//!
//! Hashes are 32 bytes. As strings (in URLs) each 8-byte group is printed as a little-endian
//! `u64` — the bytes of each group reversed ([`Hash::hex`]).

use std::fmt;

/// The largest chunk a xorb may hold, uncompressed (the specification's 128 KiB).
pub const MAX_CHUNK: usize = 128 << 10;
/// The largest serialized xorb or shard accepted. The specification says 64 MiB; hf_xet
/// fills a xorb with 64 MiB of chunk data and then adds chunk headers and its footer
/// (observed: an incompressible 300 MB file gave a xorb over 64 MiB), so the limit leaves
/// room for both.
pub const MAX_OBJECT: usize = 72 << 20;

const DATA_KEY: [u8; 32] = [
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16,
    155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
];
const INTERNAL_NODE_KEY: [u8; 32] = [
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55,
    199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
];
const VERIFICATION_KEY: [u8; 32] = [
    127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38, 213,
    181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195,
];
/// "HFRepoMetaData\0" and a fixed run of bytes: the first 32 bytes of every shard.
const SHARD_TAG: [u8; 32] = [
    b'H', b'F', b'R', b'e', b'p', b'o', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0, 85, 105,
    103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169,
];
const FLAG_VERIFICATION: u32 = 1 << 31;
const FLAG_METADATA: u32 = 1 << 30;

/// Why a xorb or shard was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XetError {
    #[error("truncated: {0}")]
    Truncated(&'static str),
    #[error("{0}")]
    Malformed(String),
    #[error("chunk {index}: {reason}")]
    Chunk { index: usize, reason: String },
    #[error("the content hashes to {found}, not {expected}")]
    HashMismatch { expected: Hash, found: Hash },
    #[error("larger than {MAX_OBJECT} bytes")]
    TooLarge,
}

/// A 32-byte Xet hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The string form: each 8-byte group as a little-endian `u64` in 16 hex digits.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for g in self.0.chunks_exact(8) {
            for b in g.iter().rev() {
                s.push_str(&format!("{b:02x}"));
            }
        }
        s
    }

    /// Parses [`Hash::hex`]'s form (64 hex digits, either case).
    pub fn from_hex(s: &str) -> Option<Hash> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let raw = hex::decode(s).ok()?;
        let mut out = [0u8; 32];
        for (g, r) in out.chunks_exact_mut(8).zip(raw.chunks_exact(8)) {
            for (o, v) in g.iter_mut().zip(r.iter().rev()) {
                *o = *v;
            }
        }
        Some(Hash(out))
    }

    fn is_bookend(&self) -> bool {
        self.0.iter().all(|&b| b == 0xff)
    }

    /// The last 8 bytes as a little-endian number: where the Merkle tree cuts.
    fn last_u64(&self) -> u64 {
        u64::from_le_bytes(self.0[24..32].try_into().unwrap())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

fn keyed(key: &[u8; 32], data: &[u8]) -> Hash {
    Hash(*blake3::keyed_hash(key, data).as_bytes())
}

/// A chunk's hash: blake3 keyed with the data key.
pub fn chunk_hash(data: &[u8]) -> Hash {
    keyed(&DATA_KEY, data)
}

/// The Merkle root over `(hash, length)` leaves: a xorb's hash (over its chunks). Nodes are
/// cut where a hash's last 8 bytes are a multiple of 4 (at least 2 and at most 9 children),
/// each node hashed over lines `"{hash} : {length}\n"`.
pub fn merkle_root(leaves: &[(Hash, u64)]) -> Hash {
    if leaves.is_empty() {
        return Hash::default();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 4 + 1);
        let mut at = 0;
        while at < level.len() {
            let rest = &level[at..];
            let cut = if rest.len() <= 2 {
                rest.len()
            } else {
                let end = 9.min(rest.len());
                (2..end)
                    .find(|&i| rest[i].0.last_u64().is_multiple_of(4))
                    .map_or(end, |i| i + 1)
            };
            let mut text = String::with_capacity(cut * 80);
            let mut total = 0;
            for (h, n) in &rest[..cut] {
                text.push_str(&format!("{} : {n}\n", h.hex()));
                total += n;
            }
            next.push((keyed(&INTERNAL_NODE_KEY, text.as_bytes()), total));
            at += cut;
        }
        level = next;
    }
    level[0].0
}

/// A file's Xet hash: the Merkle root of its chunks, keyed again with 32 zero bytes.
pub fn file_hash(leaves: &[(Hash, u64)]) -> Hash {
    if leaves.is_empty() {
        return Hash::default();
    }
    keyed(&[0; 32], &merkle_root(leaves).0)
}

/// A term's verification hash: the concatenated chunk hashes of its range, keyed.
pub fn verification_hash(chunks: &[Hash]) -> Hash {
    let mut buf = Vec::with_capacity(chunks.len() * 32);
    for h in chunks {
        buf.extend_from_slice(&h.0);
    }
    keyed(&VERIFICATION_KEY, &buf)
}

/// One chunk of a xorb: where its stored bytes are, how they are compressed, what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    /// Offset of the stored (compressed) bytes in the serialized xorb.
    pub offset: usize,
    pub stored: usize,
    pub scheme: u8,
    pub len: usize,
    pub hash: Hash,
}

/// A parsed, verified xorb: its chunks in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xorb {
    pub hash: Hash,
    pub chunks: Vec<ChunkRef>,
}

impl Xorb {
    /// Total uncompressed bytes.
    pub fn raw_len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len as u64).sum()
    }
}

/// Parses a serialized xorb, decompresses every chunk, and checks that the chunks hash to
/// `expected`. The chunk sequence may be followed by the metadata footer the reference client
/// writes (its length in the last 4 bytes); the footer is not trusted, only located.
pub fn parse_xorb(body: &[u8], expected: &Hash) -> Result<Xorb, XetError> {
    if body.len() > MAX_OBJECT {
        return Err(XetError::TooLarge);
    }
    // With a footer the chunks end where it starts; without one they fill the body.
    let footer_start = (body.len() >= 4)
        .then(|| u32::from_le_bytes(body[body.len() - 4..].try_into().unwrap()) as usize)
        .and_then(|n| body.len().checked_sub(n + 4));
    let attempt = |end: usize| -> Result<Vec<ChunkRef>, XetError> { chunks_of(body, end) };
    let chunks = match footer_start {
        Some(end) if end > 0 => match attempt(end) {
            Ok(c) => c,
            Err(e) => attempt(body.len()).map_err(|_| e)?,
        },
        _ => attempt(body.len())?,
    };
    if chunks.is_empty() {
        return Err(XetError::Malformed("a xorb without chunks".into()));
    }
    let leaves: Vec<(Hash, u64)> = chunks.iter().map(|c| (c.hash, c.len as u64)).collect();
    let found = merkle_root(&leaves);
    if found != *expected {
        return Err(XetError::HashMismatch {
            expected: *expected,
            found,
        });
    }
    Ok(Xorb {
        hash: found,
        chunks,
    })
}

/// The chunks stored in `body[..end]`, each decompressed once to hash it.
fn chunks_of(body: &[u8], end: usize) -> Result<Vec<ChunkRef>, XetError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < end {
        let index = out.len();
        let bad = |reason: &str| XetError::Chunk {
            index,
            reason: reason.to_string(),
        };
        let h = body
            .get(at..at + 8)
            .filter(|_| at + 8 <= end)
            .ok_or_else(|| bad("header cut short"))?;
        if h[0] != 0 {
            return Err(bad(&format!("unknown chunk version {}", h[0])));
        }
        let stored = u32::from_le_bytes([h[1], h[2], h[3], 0]) as usize;
        let scheme = h[4];
        let len = u32::from_le_bytes([h[5], h[6], h[7], 0]) as usize;
        if len > MAX_CHUNK {
            return Err(bad(&format!("{len} bytes, more than {MAX_CHUNK}")));
        }
        let offset = at + 8;
        if offset + stored > end {
            return Err(bad("data cut short"));
        }
        let r = ChunkRef {
            offset,
            stored,
            scheme,
            len,
            hash: Hash::default(),
        };
        let data = decompress(body, &r).map_err(|e| bad(&e))?;
        out.push(ChunkRef {
            hash: chunk_hash(&data),
            ..r
        });
        at = offset + stored;
    }
    Ok(out)
}

/// One chunk's bytes, uncompressed, from the serialized xorb it was parsed from.
pub fn chunk_data(body: &[u8], c: &ChunkRef) -> Result<Vec<u8>, XetError> {
    decompress(body, c).map_err(|reason| XetError::Chunk { index: 0, reason })
}

fn decompress(body: &[u8], c: &ChunkRef) -> Result<Vec<u8>, String> {
    let stored = body
        .get(c.offset..c.offset + c.stored)
        .ok_or("outside the xorb")?;
    let data = match c.scheme {
        0 => stored.to_vec(),
        1 => lz4_frame(stored, c.len)?,
        2 => ungroup4(&lz4_frame(stored, c.len)?),
        s => return Err(format!("unknown compression scheme {s}")),
    };
    if data.len() != c.len {
        return Err(format!(
            "decompresses to {} bytes, the header says {}",
            data.len(),
            c.len
        ));
    }
    Ok(data)
}

/// An LZ4 frame, decoded to at most `limit` bytes (one more tells it was longer).
fn lz4_frame(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::with_capacity(limit);
    lz4_flex::frame::FrameDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("LZ4: {e}"))?;
    Ok(out)
}

/// Undoes byte grouping by four: the input holds the first byte of every 4-byte group, then
/// the second bytes, and so on (a remainder spread over the first groups).
fn ungroup4(g: &[u8]) -> Vec<u8> {
    let n = g.len();
    let (q, r) = (n / 4, n % 4);
    // Group i holds q bytes, plus one when i < r.
    let mut starts = [0usize; 4];
    for i in 1..4 {
        starts[i] = starts[i - 1] + q + usize::from(i - 1 < r);
    }
    let mut out = Vec::with_capacity(n);
    for j in 0..n {
        let (word, lane) = (j / 4, j % 4);
        out.push(g[starts[lane] + word]);
    }
    out
}

/// One term of a file: a chunk range of a xorb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub xorb: Hash,
    pub bytes: u32,
    pub chunk_start: u32,
    pub chunk_end: u32,
    pub verification: Option<Hash>,
}

/// One file of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub file_hash: Hash,
    pub terms: Vec<Term>,
    /// The file's sha256 (the metadata extension) as a Xet hash: its string form
    /// ([`Hash::hex`]) is the usual hex digest.
    pub sha256: Option<[u8; 32]>,
}

impl FileInfo {
    pub fn size(&self) -> u64 {
        self.terms.iter().map(|t| u64::from(t.bytes)).sum()
    }
}

/// Parses a shard's header and file-info section (the CAS-info section that follows lists
/// the client's new xorbs, which the server learns from the xorbs themselves).
pub fn parse_shard(body: &[u8]) -> Result<Vec<FileInfo>, XetError> {
    if body.len() > MAX_OBJECT {
        return Err(XetError::TooLarge);
    }
    let header = body.get(..48).ok_or(XetError::Truncated("shard header"))?;
    if header[..32] != SHARD_TAG {
        return Err(XetError::Malformed("not a shard (wrong tag)".into()));
    }
    let version = u64::from_le_bytes(header[32..40].try_into().unwrap());
    if version != 2 {
        return Err(XetError::Malformed(format!(
            "shard version {version} (this hub reads version 2)"
        )));
    }
    let mut at = 48;
    let mut entry = |what: &'static str| -> Result<&[u8], XetError> {
        let e = body.get(at..at + 48).ok_or(XetError::Truncated(what))?;
        at += 48;
        Ok(e)
    };
    let hash = |e: &[u8]| Hash(e[..32].try_into().unwrap());
    let u32_at = |e: &[u8], i: usize| u32::from_le_bytes(e[i..i + 4].try_into().unwrap());
    let mut files = Vec::new();
    loop {
        let h = entry("file info")?;
        let file_hash = hash(h);
        if file_hash.is_bookend() {
            break;
        }
        let (flags, n) = (u32_at(h, 32), u32_at(h, 36) as usize);
        if n == 0 {
            return Err(XetError::Malformed(format!("file {file_hash}: no terms")));
        }
        if n > body.len() / 48 {
            return Err(XetError::Truncated("file terms"));
        }
        let mut terms = Vec::with_capacity(n);
        for _ in 0..n {
            let e = entry("file term")?;
            let (start, end) = (u32_at(e, 40), u32_at(e, 44));
            if start >= end {
                return Err(XetError::Malformed(format!(
                    "file {file_hash}: empty chunk range {start}..{end}"
                )));
            }
            terms.push(Term {
                xorb: hash(e),
                bytes: u32_at(e, 36),
                chunk_start: start,
                chunk_end: end,
                verification: None,
            });
        }
        if flags & FLAG_VERIFICATION != 0 {
            for t in &mut terms {
                t.verification = Some(hash(entry("verification entry")?));
            }
        }
        let sha256 = if flags & FLAG_METADATA != 0 {
            Some(entry("metadata extension")?[..32].try_into().unwrap())
        } else {
            None
        };
        files.push(FileInfo {
            file_hash,
            terms,
            sha256,
        });
    }
    Ok(files)
}

/// Serializes chunks as an uncompressed xorb (no footer) with its hash: what a minimal
/// client uploads (tests, tools).
pub fn xorb_bytes(chunks: &[&[u8]]) -> (Vec<u8>, Hash) {
    let mut body = Vec::new();
    let mut leaves = Vec::with_capacity(chunks.len());
    for c in chunks {
        let n = (c.len() as u32).to_le_bytes();
        body.push(0);
        body.extend_from_slice(&n[..3]);
        body.push(0);
        body.extend_from_slice(&n[..3]);
        body.extend_from_slice(c);
        leaves.push((chunk_hash(c), c.len() as u64));
    }
    (body, merkle_root(&leaves))
}

/// Serializes files as an upload shard (header, file-info section, an empty CAS-info
/// section, no footer), with verification entries when every term has one.
pub fn shard_bytes(files: &[FileInfo]) -> Vec<u8> {
    let mut s = SHARD_TAG.to_vec();
    s.extend_from_slice(&2u64.to_le_bytes());
    s.extend_from_slice(&0u64.to_le_bytes());
    let pad = |s: &mut Vec<u8>, n: usize| s.resize(s.len() + n, 0);
    for f in files {
        let verify = f.terms.iter().all(|t| t.verification.is_some());
        let flags = if verify { FLAG_VERIFICATION } else { 0 }
            | if f.sha256.is_some() { FLAG_METADATA } else { 0 };
        s.extend_from_slice(&f.file_hash.0);
        s.extend_from_slice(&flags.to_le_bytes());
        s.extend_from_slice(&(f.terms.len() as u32).to_le_bytes());
        pad(&mut s, 8);
        for t in &f.terms {
            s.extend_from_slice(&t.xorb.0);
            s.extend_from_slice(&0u32.to_le_bytes());
            s.extend_from_slice(&t.bytes.to_le_bytes());
            s.extend_from_slice(&t.chunk_start.to_le_bytes());
            s.extend_from_slice(&t.chunk_end.to_le_bytes());
        }
        if verify {
            for t in &f.terms {
                s.extend_from_slice(&t.verification.unwrap_or_default().0);
                pad(&mut s, 16);
            }
        }
        if let Some(sha) = f.sha256 {
            s.extend_from_slice(&sha);
            pad(&mut s, 16);
        }
    }
    for _ in 0..2 {
        s.extend_from_slice(&[0xff; 32]);
        pad(&mut s, 16);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    /// The specification's example (its printed string drops the byte `10`).
    fn hash_strings_reverse_each_8_byte_group() {
        let h = Hash(std::array::from_fn(|i| i as u8));
        assert_eq!(
            h.hex(),
            "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
        );
        assert_eq!(Hash::from_hex(&h.hex()), Some(h));
        assert_eq!(Hash::from_hex("zz"), None);
    }

    /// The reference values of xet-core's `aggregated_hashes` test (leaves from its seeded
    /// generator, printed in the string form).
    #[test]
    fn merkle_root_matches_the_reference_implementation() {
        let h = |s: &str| Hash::from_hex(s).unwrap();
        let a = h("cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6");
        let b = h("c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72");
        let c = h("0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37");
        let d = h("adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784");
        let z = Hash::default();
        assert_eq!(merkle_root(&[(a, 100)]), a);
        assert_eq!(
            merkle_root(&[(a, 100), (b, 200), (c, 300)]).hex(),
            "71ec1275fca074724e2dd666921b3277c7cee603e4d025bcab2d4050015be2bc"
        );
        assert_eq!(
            merkle_root(&[(a, 100); 4]).hex(),
            "89f2ada89ff8c96763c6b25010e6dd76a4c05b1466207633ea559acf2093211b"
        );
        assert_eq!(
            merkle_root(&[(a, 100), (b, 200), (a, 100), (b, 200), (c, 300), (d, 400)]).hex(),
            "52c826f99507aa05d0b45e9837fa1709e0485425cfbcb1e80db3905cf98b3ee9"
        );
        assert_eq!(
            merkle_root(&[(z, 0), (a, 100), (z, 0), (a, 100), (z, 0)]).hex(),
            "f36c6a6374a567efd36ed087aeb680b57e3af4e0b5b8e7be2593df4cb647a2de"
        );
        assert_eq!(
            file_hash(&[(a, 100), (b, 200), (c, 300)]).hex(),
            "54e55dccc6653c612bdb5576c5d3cb34bb31bc4e100248abccf4c908b3ef7715"
        );
    }

    #[test]
    fn byte_grouping_round_trips_every_remainder() {
        for n in 0..13 {
            let raw: Vec<u8> = (0..n as u8).collect();
            let mut groups: [Vec<u8>; 4] = Default::default();
            for (j, &b) in raw.iter().enumerate() {
                groups[j % 4].push(b);
            }
            let grouped: Vec<u8> = groups.concat();
            assert_eq!(ungroup4(&grouped), raw, "{n} bytes");
        }
    }

    /// A xorb of `chunks`, each stored with `scheme`.
    pub(crate) fn xorb_of(chunks: &[Vec<u8>], scheme: u8) -> (Vec<u8>, Hash) {
        let mut body = Vec::new();
        let mut leaves = Vec::new();
        for c in chunks {
            let stored = match scheme {
                0 => c.clone(),
                1 | 2 => {
                    let src = if scheme == 2 {
                        let mut g: [Vec<u8>; 4] = Default::default();
                        for (j, &b) in c.iter().enumerate() {
                            g[j % 4].push(b);
                        }
                        g.concat()
                    } else {
                        c.clone()
                    };
                    let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                    std::io::Write::write_all(&mut e, &src).unwrap();
                    e.finish().unwrap()
                }
                _ => unreachable!(),
            };
            let n = stored.len() as u32;
            let l = c.len() as u32;
            body.push(0);
            body.extend_from_slice(&n.to_le_bytes()[..3]);
            body.push(scheme);
            body.extend_from_slice(&l.to_le_bytes()[..3]);
            body.extend_from_slice(&stored);
            leaves.push((chunk_hash(c), c.len() as u64));
        }
        (body, merkle_root(&leaves))
    }

    #[test]
    fn xorbs_parse_in_every_scheme_and_must_match_their_hash() {
        let chunks: Vec<Vec<u8>> = (0..5)
            .map(|i| {
                (0..1000 + i * 37)
                    .map(|j| ((j * 7 + i) % 251) as u8)
                    .collect()
            })
            .collect();
        for scheme in 0..3 {
            let (body, hash) = xorb_of(&chunks, scheme);
            let x = parse_xorb(&body, &hash).unwrap();
            assert_eq!(x.chunks.len(), 5);
            for (c, want) in x.chunks.iter().zip(&chunks) {
                assert_eq!(&chunk_data(&body, c).unwrap(), want);
            }
            // A footer after the chunks (its length in the last 4 bytes) is skipped.
            let mut with_footer = body.clone();
            with_footer.extend_from_slice(&[9u8; 20]);
            with_footer.extend_from_slice(&20u32.to_le_bytes());
            assert_eq!(parse_xorb(&with_footer, &hash).unwrap().chunks, x.chunks);
            // Another hash, or a flipped byte, is refused.
            let other = chunk_hash(b"other");
            assert!(matches!(
                parse_xorb(&body, &other),
                Err(XetError::HashMismatch { .. })
            ));
            let mut bad = body.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(parse_xorb(&bad, &hash).is_err(), "scheme {scheme}");
        }
        assert!(parse_xorb(&[0, 5, 0, 0, 0, 5, 0, 0, 1], &Hash::default()).is_err());
        assert!(parse_xorb(&[], &Hash::default()).is_err());
    }

    #[test]
    fn shards_parse_and_refuse_truncation() {
        let x = chunk_hash(b"x");
        let term = |start, end| Term {
            xorb: x,
            bytes: 100,
            chunk_start: start,
            chunk_end: end,
            verification: Some(Hash([1; 32])),
        };
        let s = shard_bytes(&[FileInfo {
            file_hash: Hash([7; 32]),
            terms: vec![term(0, 2), term(2, 3)],
            sha256: Some([5; 32]),
        }]);
        let files = parse_shard(&s).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].terms.len(), 2);
        assert_eq!(files[0].size(), 200);
        assert_eq!(files[0].sha256, Some([5u8; 32]));
        assert_eq!(files[0].terms[1].chunk_start, 2);
        for cut in [10, 60, 100, s.len() - 96] {
            assert!(parse_shard(&s[..cut]).is_err(), "cut at {cut}");
        }
        let mut wrong = s;
        wrong[0] = b'X';
        assert!(parse_shard(&wrong).is_err());
    }
}
