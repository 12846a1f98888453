//! Build ids: 26 characters of lower-case Crockford base32 (`0-9a-z` without `i l o u`)
//! encoding a UUIDv7 — the ULID layout. Short enough to type, URL- and Redis-key-safe, and
//! sortable: ids compare as text in creation order (48-bit millisecond time first, then the
//! UUIDv7 counter that keeps ids made in one millisecond by one process increasing). The
//! coalescing of pushes relies on that order.

use uuid::Uuid;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Length of every build id.
pub const LENGTH: usize = 26;

/// The id of `uuid`, big-endian, 5 bits per character (the first character holds 3 bits).
pub fn format(uuid: Uuid) -> String {
    let mut value = uuid.as_u128();
    let mut out = [0u8; LENGTH];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 0x1f) as usize];
        value >>= 5;
    }
    out.iter().map(|&byte| byte as char).collect()
}

/// A new id, later than every id this process made before.
pub fn new() -> String {
    format(Uuid::now_v7())
}

/// Whether `id` has the shape of a build id (for ids read back from Redis or typed by users).
pub fn is_valid(id: &str) -> bool {
    id.len() == LENGTH
        && id.bytes().all(|byte| ALPHABET.contains(&byte))
        && id.as_bytes()[0] <= b'7'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_ulid() {
        assert_eq!(format(Uuid::nil()), "0".repeat(26));
        assert_eq!(format(Uuid::max()), format!("7{}", "z".repeat(25)));
        // ULID spec example: 01ARZ3NDEKTSV4RRFFQ69G5FAV is 0x01563E3AB5D3D6764C61EFB99302BD5B.
        let uuid = Uuid::from_u128(0x0156_3E3A_B5D3_D676_4C61_EFB9_9302_BD5B);
        assert_eq!(format(uuid), "01arz3ndektsv4rrffq69g5fav");
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..2000).map(|_| new()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|id| is_valid(id)));
        assert!(!is_valid("../etc"));
    }

    #[test]
    fn time_comes_first() {
        // UUIDv7 keeps the Unix milliseconds in its top 48 bits.
        let at = |ms: u64| format(Uuid::from_u128(u128::from(ms) << 80));
        assert!(at(1_736_936_523_000) < at(1_736_936_523_001));
        assert!(at(999) < at(1_000_000_000_000));
    }
}
