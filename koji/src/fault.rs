//! What the hub's faults mean, pure: the fault codes a client acts on, and the fault texts
//! of the calls whose outcome the caller must tell apart (koji gives them one generic code).

/// Koji's fault codes (`koji.GenericError` and friends) a client acts on.
pub mod code {
    pub const LOCK: i32 = 1001;
    pub const AUTH: i32 = 1002;
    pub const AUTH_EXPIRED: i32 = 1007;
    pub const SERVER_OFFLINE: i32 = 1014;
}

/// `CGInitBuild` (or `CGImport`) refused an NVR that exists or is reserved already.
pub fn means_taken(text: &str) -> bool {
    text.contains("already exists") || text.contains("already reserved")
}

/// `tagBuild`/`tagBuildBypass` found the build in the tag already.
pub fn means_already_tagged(text: &str) -> bool {
    text.contains("already tagged")
}

/// `CGRefundBuild` found nothing left to release: refunded before (a redelivery), or
/// imported since.
pub fn means_nothing_to_refund(text: &str) -> bool {
    text.contains("is not in BUILDING state") || text.contains("Token doesn't match")
}

/// The session is gone (the hub restarted without its sessions, or it expired): log in again.
pub fn means_session_lost(code: i32, text: &str) -> bool {
    code == code::AUTH_EXPIRED || (code == code::AUTH && text.contains("Invalid session"))
}

/// Worth trying again later: the hub is offline or a row is locked.
pub fn is_transient(code: i32) -> bool {
    matches!(code, code::SERVER_OFFLINE | code::LOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_texts_of_a_real_hub() {
        type Check = fn(&str) -> bool;
        let table: [(Check, &str, bool); 9] = [
            (
                means_taken,
                "Build already exists (id=3, state=1): app-1-1",
                true,
            ),
            (means_taken, "Build is already reserved", true),
            (means_taken, "Insufficient privileges", false),
            (
                means_already_tagged,
                "build app-1-1 already tagged (f41)",
                true,
            ),
            (means_already_tagged, "policy violation", false),
            (
                means_nothing_to_refund,
                "Build ID 7 is not in BUILDING state",
                true,
            ),
            (means_nothing_to_refund, "Token doesn't match", true),
            (means_nothing_to_refund, "No such build: 7", false),
            (means_taken, "", false),
        ];
        for (check, text, expected) in table {
            assert_eq!(check(text), expected, "{text:?}");
        }
    }

    #[test]
    fn codes() {
        assert!(means_session_lost(
            1002,
            "Invalid session or bad credentials"
        ));
        assert!(means_session_lost(1007, "session \"3\" has expired"));
        assert!(!means_session_lost(
            1002,
            "Content generator access required (osbs)"
        ));
        assert!(is_transient(1014) && is_transient(1001));
        assert!(!is_transient(1000));
    }
}
