//! Builds layer tars in code and lists a squashed layer as readable lines, for the table
//! and hostile-input tests.

#![allow(dead_code)] // each test binary uses a different part

use std::io::Read;

/// One entry of a fixture layer.
#[derive(Debug, Clone)]
pub enum E {
    Dir(&'static str),
    DirMode(&'static str, u32),
    File(&'static str, &'static str),
    /// path, content, mode, uid, gid, mtime, xattr (name, value)
    FileFull(
        &'static str,
        &'static str,
        u32,
        u64,
        u64,
        u64,
        Option<(&'static str, &'static [u8])>,
    ),
    Symlink(&'static str, &'static str),
    Hard(&'static str, &'static str),
    Whiteout(&'static str),
    Opaque(&'static str),
    /// A raw header: name, typeflag, data.
    Raw(&'static str, u8, &'static [u8]),
}

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_mtime(1_600_000_000);
    header.set_size(0);
    header
}

fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// Appends an entry with its name written raw (the tar crate refuses the absolute and `..`
/// names the hostile tests need).
fn append(builder: &mut tar::Builder<Vec<u8>>, header: &mut tar::Header, path: &str, data: &[u8]) {
    assert!(path.len() <= 100, "fixture names fit the header");
    let name = &mut header.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(header, data).unwrap();
}

fn set_link(header: &mut tar::Header, target: &str) {
    let link = &mut header.as_old_mut().linkname;
    link[..target.len()].copy_from_slice(target.as_bytes());
}

/// A layer tar holding `entries` in order.
pub fn layer(entries: &[E]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        match entry {
            E::Dir(path) => {
                let mut h = header(tar::EntryType::Directory, 0o755);
                append(&mut builder, &mut h, &format!("{path}/"), &[]);
            }
            E::DirMode(path, mode) => {
                let mut h = header(tar::EntryType::Directory, *mode);
                append(&mut builder, &mut h, &format!("{path}/"), &[]);
            }
            E::File(path, content) => {
                let mut h = header(tar::EntryType::Regular, 0o644);
                append(&mut builder, &mut h, path, content.as_bytes());
            }
            E::FileFull(path, content, mode, uid, gid, mtime, xattr) => {
                if let Some((name, value)) = xattr {
                    let key = format!("SCHILY.xattr.{name}");
                    builder
                        .append_pax_extensions([(key.as_str(), *value)])
                        .unwrap();
                }
                let mut h = header(tar::EntryType::Regular, *mode);
                h.set_size(content.len() as u64);
                h.set_uid(*uid);
                h.set_gid(*gid);
                h.set_mtime(*mtime);
                h.set_username("builder").unwrap();
                h.set_groupname("wheel").unwrap();
                append(&mut builder, &mut h, path, content.as_bytes());
            }
            E::Symlink(path, target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777);
                set_link(&mut h, target);
                append(&mut builder, &mut h, path, &[]);
            }
            E::Hard(path, target) => {
                let mut h = header(tar::EntryType::Link, 0o644);
                set_link(&mut h, target);
                append(&mut builder, &mut h, path, &[]);
            }
            E::Whiteout(path) => {
                let (dir, name) = split(path);
                let mut h = header(tar::EntryType::Regular, 0o600);
                append(
                    &mut builder,
                    &mut h,
                    &join(dir, &format!(".wh.{name}")),
                    &[],
                );
            }
            E::Opaque(dir) => {
                let mut h = header(tar::EntryType::Regular, 0o600);
                append(&mut builder, &mut h, &join(dir, ".wh..wh..opq"), &[]);
            }
            E::Raw(name, typeflag, data) => {
                let mut h = tar::Header::new_gnu();
                h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                h.set_entry_type(tar::EntryType::new(*typeflag));
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                h.set_cksum();
                let mut bytes = h.as_bytes().to_vec();
                bytes.extend_from_slice(data);
                bytes.resize(bytes.len().div_ceil(512) * 512, 0);
                builder.get_mut().extend_from_slice(&bytes);
            }
        }
    }
    builder.into_inner().unwrap()
}

/// The squashed layer as lines: `d path/ mode`, `f path mode =content`, `l path -> target`,
/// `h path => target`, with `uid:gid uname:gname mtime xattrs` when not the defaults.
pub fn listing(tar_bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut lines = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let header = entry.header().clone();
        let mut extra = String::new();
        let (uid, gid) = (header.uid().unwrap(), header.gid().unwrap());
        if uid != 0 || gid != 0 {
            extra.push_str(&format!(
                " {uid}:{gid} {}:{} t{}",
                header.username().unwrap().unwrap_or(""),
                header.groupname().unwrap().unwrap_or(""),
                header.mtime().unwrap()
            ));
        }
        if let Some(pax) = entry.pax_extensions().unwrap() {
            for record in pax {
                let record = record.unwrap();
                if record.key().unwrap().starts_with("SCHILY.xattr.") {
                    extra.push_str(&format!(
                        " {}={}",
                        record.key().unwrap(),
                        String::from_utf8_lossy(record.value_bytes())
                    ));
                }
            }
        }
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        let mode = header.mode().unwrap();
        let line = match header.entry_type() {
            tar::EntryType::Directory => format!("d {path} {mode:o}{extra}"),
            tar::EntryType::Regular => {
                let mut content = String::new();
                entry.read_to_string(&mut content).unwrap();
                format!("f {path} {mode:o} ={content}{extra}")
            }
            tar::EntryType::Symlink => format!("l {path} -> {link}"),
            tar::EntryType::Link => format!("h {path} => {link}"),
            other => format!("? {path} {other:?}"),
        };
        lines.push(line);
    }
    lines
}

/// Squashes `layers` (bottom first) above `base` layers and lists the result.
pub fn squash(
    layers: &[Vec<u8>],
    base: usize,
) -> Result<(Vec<String>, osbs_squash::MergedLayer), osbs_squash::SquashError> {
    let slices: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let mut out = Vec::new();
    let merged = osbs_squash::squash_tars(&slices, base, &mut out)?;
    assert_eq!(merged.size, out.len() as u64, "reported size");
    Ok((listing(&out), merged))
}
