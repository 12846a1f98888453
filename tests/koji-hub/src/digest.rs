//! The hub's checksum classes (`get_verify_class`): md5, adler32 and sha256 verify uploads
//! and outputs; archives record md5, sha1 or sha256 (`koji.CHECKSUM_TYPES`).

use crate::fault::Fault;
use sha2::Digest;

/// A running checksum of one of the hub's verify types.
#[derive(Clone)]
pub enum Verifier {
    Md5(md5::Md5),
    Adler32(simd_adler32::Adler32),
    Sha256(sha2::Sha256),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verifier::Md5(_) => "Verifier::Md5",
            Verifier::Adler32(_) => "Verifier::Adler32",
            Verifier::Sha256(_) => "Verifier::Sha256",
        })
    }
}

impl Verifier {
    /// `get_verify_class(verify)`: `None` for an empty name, a fault for an unknown one.
    pub fn for_name(name: &str) -> Result<Option<Verifier>, Fault> {
        Ok(match name {
            "" => None,
            "md5" => Some(Verifier::Md5(md5::Md5::new())),
            "adler32" => Some(Verifier::Adler32(simd_adler32::Adler32::new())),
            "sha256" => Some(Verifier::Sha256(sha2::Sha256::new())),
            other => return Err(Fault::generic(format!("Unsupported verify type: {other}"))),
        })
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Verifier::Md5(state) => state.update(bytes),
            Verifier::Adler32(state) => state.write(bytes),
            Verifier::Sha256(state) => state.update(bytes),
        }
    }

    /// Lower-case hex, as Python's `hexdigest()` (adler32: 8 hex digits, `%08x`).
    pub fn hexdigest(&self) -> String {
        match self {
            Verifier::Md5(state) => hex::encode(state.clone().finalize()),
            Verifier::Adler32(state) => format!("{:08x}", state.finish()),
            Verifier::Sha256(state) => hex::encode(state.clone().finalize()),
        }
    }
}

/// `koji.CHECKSUM_TYPES[name]`: the number an archive records, or the `KeyError` a real hub
/// raises for anything else (adler32 included).
pub fn archive_checksum_type(name: &str) -> Result<i64, Fault> {
    match name {
        "md5" => Ok(0),
        "sha1" => Ok(1),
        "sha256" => Ok(2),
        other => Err(Fault::key_error(other)),
    }
}

/// The hex digest of `bytes` with verify type `name` (which must be known).
pub fn hexdigest(name: &str, bytes: &[u8]) -> Result<String, Fault> {
    let mut verifier = Verifier::for_name(name)?
        .ok_or_else(|| Fault::python("TypeError", "'NoneType' object is not callable"))?;
    verifier.update(bytes);
    Ok(verifier.hexdigest())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_python() {
        // Values from Python's hashlib and zlib.adler32.
        assert_eq!(
            hexdigest("md5", b"abc").unwrap(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(hexdigest("adler32", b"abc").unwrap(), "024d0127");
        assert_eq!(
            hexdigest("sha256", b"abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            Verifier::for_name("sha1").unwrap_err().text,
            "Unsupported verify type: sha1"
        );
        assert_eq!(
            archive_checksum_type("adler32").unwrap_err().text,
            "<class 'KeyError'>: 'adler32'"
        );
    }
}
