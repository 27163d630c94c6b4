//! A document's content hash (spec: `wire.md`, "Conventions"): BLAKE3 of every byte of the
//! sealed or forwarded document. It names the document in offers, receipts, evidence
//! bundles and a node's store.

/// The content hash of a document, taken as its bytes go by.
#[derive(Debug, Clone, Default)]
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    /// A hash of no bytes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes of the document.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The content hash of every byte taken.
    pub fn finalize(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// The content hash of a whole document in memory.
pub fn content_hash(document: &[u8]) -> [u8; 32] {
    *blake3::hash(document).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_hash_is_blake3_of_every_byte_however_they_arrive() {
        // BLAKE3 of "abc", from the reference implementation's test vectors.
        let abc = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85";
        let hex: String = content_hash(b"abc")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, abc);
        let mut hasher = ContentHasher::new();
        for part in [&b"a"[..], b"", b"bc"] {
            hasher.update(part);
        }
        assert_eq!(hasher.finalize(), content_hash(b"abc"));
    }
}
