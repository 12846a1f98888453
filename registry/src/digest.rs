//! Content digests, pure: the `sha256:<64 hex>` grammar (the only algorithm OSBS writes,
//! and the one every registry serves) and hashing bytes as they pass on their way out.

use sha2::{Digest as _, Sha256};
use std::io::{self, Write};

/// `sha256:` followed by 64 lowercase hex digits.
pub fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The digest of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Hashes (when asked) and counts what passes through to `inner`.
#[derive(Debug)]
pub struct HashingWriter<W> {
    pub inner: W,
    pub hasher: Option<Sha256>,
    pub count: u64,
}

impl<W> HashingWriter<W> {
    pub fn new(inner: W, hash: bool) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: hash.then(Sha256::new),
            count: 0,
        }
    }

    /// The digest of what passed, if it was hashed.
    pub fn digest(&mut self) -> Option<String> {
        self.hasher
            .take()
            .map(|hasher| format!("sha256:{}", hex::encode(hasher.finalize())))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_digest(b""), empty);
        for (text, ok) in [
            (empty, true),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                false,
            ),
            ("sha256:abc", false),
            (
                "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                false,
            ),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                false,
            ),
            (
                "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85/",
                false,
            ),
            ("", false),
        ] {
            assert_eq!(is_digest(text), ok, "{text}");
        }
    }

    #[test]
    fn the_hashing_writer_hashes_what_it_passes() {
        let mut writer = HashingWriter::new(Vec::new(), true);
        writer.write_all(b"hello ").unwrap();
        writer.write_all(b"world").unwrap();
        assert_eq!(writer.count, 11);
        assert_eq!(writer.digest(), Some(sha256_digest(b"hello world")));
        assert_eq!(writer.inner, b"hello world");
        let mut counting = HashingWriter::new(io::sink(), false);
        counting.write_all(b"abc").unwrap();
        assert_eq!((counting.count, counting.digest()), (3, None));
    }
}
