//! The build context's rules, pure: which names of the checkout it leaves out and how a file
//! the worker adds (yum repo files, the buildinfo Dockerfile, the rewritten `Dockerfile`)
//! is archived. Writing the tar, through the checkout's directory handles, is
//! the context adapter (`adapters/context.rs`).

use std::collections::BTreeMap;

/// Whether the context leaves out the checkout's entry `name` (in the top directory when
/// `at_top`): git's own files, and the files the worker adds in its place.
pub fn leaves_out(at_top: bool, name: &[u8], extra: &BTreeMap<String, Vec<u8>>) -> bool {
    at_top && (name == b".git" || extra.contains_key(String::from_utf8_lossy(name).as_ref()))
}

/// The tar header of a file the worker adds: plain, readable, of `size` bytes, dated 0 so
/// that the same inputs make the same context.
pub fn added_file_header(size: usize) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(size as u64);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_context_leaves_out() {
        let extra: BTreeMap<String, Vec<u8>> = [("Dockerfile".to_owned(), Vec::new())]
            .into_iter()
            .collect();
        let table: [(bool, &[u8], bool); 6] = [
            (true, b".git", true),
            (false, b".git", false),
            (true, b"Dockerfile", true),
            (false, b"Dockerfile", false),
            (true, b"app.py", false),
            (true, b".gitignore", false),
        ];
        for (at_top, name, left_out) in table {
            assert_eq!(
                leaves_out(at_top, name, &extra),
                left_out,
                "{} at top {at_top}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn added_files_are_plain_and_undated() {
        let header = added_file_header(12);
        assert_eq!(header.size().unwrap(), 12);
        assert_eq!(header.mode().unwrap(), 0o644);
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!(header.entry_type(), tar::EntryType::Regular);
    }
}
