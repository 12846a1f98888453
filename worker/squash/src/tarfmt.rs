//! Reads and writes tar headers (ustar, GNU long names, PAX records) with hard caps on
//! everything that would otherwise be buffered, and parses exactly like the Docker Engine's
//! Go `archive/tar` does where parsers disagree.
//!
//! Why not `tar::Archive`: it reads PAX and GNU long-name data fully into memory whatever
//! size the header claims (a hostile layer could make us allocate gigabytes), and it gives
//! data to header-only entries (a directory with a size field) where Go gives none, so a
//! crafted layer would parse differently here and in the engine. `tar::Header` still does
//! the field decoding (octal, base-256, ustar prefix) and `tar::PaxExtensions` the records.

use std::io::{self, Read, Write};

/// Largest PAX extended header we accept (xattrs and long names fit easily).
const PAX_LIMIT: u64 = 1 << 20;
/// Largest GNU long name/link we accept (Linux PATH_MAX is 4096).
const LONG_NAME_LIMIT: u64 = 64 << 10;
const BLOCK: u64 = 512;

/// Entry types, after Go's normalisation (`\0` + trailing `/` is a directory).
pub(crate) const REGULAR: u8 = b'0';
pub(crate) const HARD_LINK: u8 = b'1';
pub(crate) const SYMLINK: u8 = b'2';
pub(crate) const CHAR: u8 = b'3';
pub(crate) const BLOCK_DEV: u8 = b'4';
pub(crate) const DIRECTORY: u8 = b'5';
pub(crate) const FIFO: u8 = b'6';

/// What went wrong while reading a layer tar.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    #[error("corrupt tar at byte {offset}: {reason}")]
    Corrupt { offset: u64, reason: String },
    #[error("entry '{path}' uses {what}, which layers must not contain")]
    Unsupported { path: String, what: String },
}

/// One logical tar entry's metadata (extension headers folded in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// The path as written in the archive (PAX `path` > GNU long name > ustar name).
    pub path: Vec<u8>,
    /// Link target as written (symlink target or hard-link target).
    pub link: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Bytes of data that follow the header.
    pub size: u64,
    /// Every PAX record except `path`, `linkpath` and `size`, in archive order (xattrs as
    /// `SCHILY.xattr.*`, sub-second times, PAX uid/gid/uname/gname...).
    pub pax: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    /// A header-only entry with fixed, deterministic metadata (whiteouts, opaque markers,
    /// directories the squash has to create).
    pub(crate) fn synthetic(path: Vec<u8>, typeflag: u8, mode: u32) -> Meta {
        Meta {
            path,
            link: Vec::new(),
            typeflag,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            uname: Vec::new(),
            gname: Vec::new(),
            dev_major: 0,
            dev_minor: 0,
            size: 0,
            pax: Vec::new(),
        }
    }
}

/// A source of layer bytes that can skip forward cheaply when it knows how.
pub trait Source: Read {
    /// Discards the next `n` bytes.
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut self.take(n), &mut io::sink())?;
        if copied < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// Any reader, skipping by reading.
#[derive(Debug)]
pub struct Sequential<R>(pub R);

impl<R: Read> Read for Sequential<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Source for Sequential<R> {}

/// Streams the entries of one tar archive.
#[derive(Debug)]
pub(crate) struct TarReader<S> {
    source: S,
    offset: u64,
    /// Data (plus padding) of the current entry not yet consumed.
    pending: u64,
    pending_padding: u64,
    done: bool,
}

impl<S: Source> TarReader<S> {
    pub(crate) fn new(source: S) -> Self {
        TarReader {
            source,
            offset: 0,
            pending: 0,
            pending_padding: 0,
            done: false,
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> TarError {
        TarError::Corrupt {
            offset: self.offset,
            reason: reason.into(),
        }
    }

    /// Reads one 512-byte block; `None` at a clean end of input.
    fn block(&mut self) -> Result<Option<[u8; 512]>, TarError> {
        let mut block = [0u8; 512];
        let mut filled = 0;
        while filled < 512 {
            let n = self.source.read(&mut block[filled..])?;
            if n == 0 {
                if filled == 0 {
                    return Ok(None);
                }
                return Err(self.corrupt("truncated header"));
            }
            filled += n;
        }
        self.offset += BLOCK;
        Ok(Some(block))
    }

    fn skip_pending(&mut self) -> Result<(), TarError> {
        let n = self.pending + self.pending_padding;
        if n > 0 {
            self.source.skip(n).map_err(|error| {
                if error.kind() == io::ErrorKind::UnexpectedEof {
                    self.corrupt("truncated entry data")
                } else {
                    TarError::Io(error)
                }
            })?;
            self.offset += n;
        }
        self.pending = 0;
        self.pending_padding = 0;
        Ok(())
    }

    fn read_capped(&mut self, size: u64, limit: u64, what: &str) -> Result<Vec<u8>, TarError> {
        if size > limit {
            return Err(self.corrupt(format!("{what} of {size} bytes (limit {limit})")));
        }
        let mut data = vec![0u8; size as usize];
        self.source
            .read_exact(&mut data)
            .map_err(|_| self.corrupt(format!("truncated {what}")))?;
        self.offset += size;
        let padding = padding(size);
        self.source
            .skip(padding)
            .map_err(|_| self.corrupt("truncated padding"))?;
        self.offset += padding;
        Ok(data)
    }

    /// The next logical entry, or `None` at the end of the archive. Unconsumed data of the
    /// previous entry is skipped.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Meta>, TarError> {
        self.skip_pending()?;
        if self.done {
            return Ok(None);
        }
        let mut pax: Option<Vec<u8>> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let Some(block) = self.block()? else {
                if pax.is_some() || long_name.is_some() || long_link.is_some() {
                    return Err(self.corrupt("extension header without an entry"));
                }
                self.done = true;
                return Ok(None);
            };
            if block.iter().all(|byte| *byte == 0) {
                // Go stops at the first zero block too (it only checks the second one).
                self.done = true;
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            let stored = header
                .cksum()
                .map_err(|_| self.corrupt("unreadable checksum"))?;
            let computed = block[..148]
                .iter()
                .chain(&block[156..])
                .fold(8 * 32u32, |sum, byte| sum + u32::from(*byte));
            if stored != computed {
                return Err(self.corrupt("header checksum mismatch"));
            }
            let header_size = self.number(header.entry_size(), &header.as_old().size, "size")?;
            match block[156] {
                b'x' => {
                    if pax.is_some() {
                        return Err(self.corrupt("two PAX headers for one entry"));
                    }
                    pax = Some(self.read_capped(header_size, PAX_LIMIT, "PAX header")?);
                }
                b'g' => {
                    // Global PAX headers are ignored, as the Docker Engine ignores them.
                    self.pending = header_size;
                    self.pending_padding = padding(header_size);
                    self.skip_pending()?;
                }
                b'L' => {
                    let name = self.read_capped(header_size, LONG_NAME_LIMIT, "GNU long name")?;
                    long_name = Some(trim_nul(name));
                }
                b'K' => {
                    let name = self.read_capped(header_size, LONG_NAME_LIMIT, "GNU long link")?;
                    long_link = Some(trim_nul(name));
                }
                typeflag => {
                    return self
                        .finish_entry(header, typeflag, header_size, pax, long_name, long_link)
                        .map(Some);
                }
            }
        }
    }

    /// A numeric field; an empty one (all NUL or spaces) is 0, as Go reads it.
    fn number<T: Default>(
        &self,
        parsed: io::Result<T>,
        raw: &[u8],
        what: &str,
    ) -> Result<T, TarError> {
        match parsed {
            Ok(value) => Ok(value),
            Err(_) if raw.iter().all(|byte| *byte == 0 || *byte == b' ') => Ok(T::default()),
            Err(_) => Err(self.corrupt(format!("unreadable {what} field"))),
        }
    }

    fn finish_entry(
        &mut self,
        header: &tar::Header,
        typeflag: u8,
        header_size: u64,
        pax: Option<Vec<u8>>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Meta, TarError> {
        let mut meta = Meta {
            path: long_name.unwrap_or_else(|| header.path_bytes().into_owned()),
            link: long_link.unwrap_or_else(|| {
                header
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default()
            }),
            typeflag,
            mode: self.number(header.mode(), &header.as_old().mode, "mode")?,
            uid: self.number(header.uid(), &header.as_old().uid, "uid")?,
            gid: self.number(header.gid(), &header.as_old().gid, "gid")?,
            mtime: self.number(header.mtime(), &header.as_old().mtime, "mtime")?,
            uname: header
                .username_bytes()
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            gname: header
                .groupname_bytes()
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            dev_major: 0,
            dev_minor: 0,
            size: header_size,
            pax: Vec::new(),
        };
        if matches!(typeflag, CHAR | BLOCK_DEV) {
            meta.dev_major = header.device_major().ok().flatten().unwrap_or(0);
            meta.dev_minor = header.device_minor().ok().flatten().unwrap_or(0);
        }
        if let Some(data) = pax {
            for record in tar::PaxExtensions::new(&data) {
                let record = record.map_err(|_| self.corrupt("malformed PAX record"))?;
                let (key, value) = (record.key_bytes(), record.value_bytes());
                let number = || {
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|text| text.split('.').next())
                        .and_then(|text| text.parse::<u64>().ok())
                };
                match key {
                    b"path" => meta.path = value.to_vec(),
                    b"linkpath" => meta.link = value.to_vec(),
                    b"size" => {
                        meta.size = number().ok_or_else(|| self.corrupt("bad PAX size"))?;
                        continue;
                    }
                    b"uid" => meta.uid = number().ok_or_else(|| self.corrupt("bad PAX uid"))?,
                    b"gid" => meta.gid = number().ok_or_else(|| self.corrupt("bad PAX gid"))?,
                    b"mtime" => meta.mtime = number().unwrap_or(meta.mtime),
                    b"uname" => meta.uname = value.to_vec(),
                    b"gname" => meta.gname = value.to_vec(),
                    _ if key.starts_with(b"GNU.sparse.") => {
                        return Err(unsupported(&meta.path, "GNU sparse data"));
                    }
                    _ => {}
                }
                if key != b"path" && key != b"linkpath" {
                    meta.pax.push((key.to_vec(), value.to_vec()));
                }
            }
        }
        meta.typeflag = match typeflag {
            0 if meta.path.ends_with(b"/") => DIRECTORY,
            0 | b'0' => REGULAR,
            HARD_LINK | SYMLINK | CHAR | BLOCK_DEV | DIRECTORY | FIFO => typeflag,
            b'S' => return Err(unsupported(&meta.path, "GNU sparse data")),
            other => {
                return Err(unsupported(
                    &meta.path,
                    &format!("entry type '{}'", other.escape_ascii()),
                ));
            }
        };
        // Go's reader gives header-only types no data, whatever the size field says.
        if meta.typeflag != REGULAR {
            meta.size = 0;
        }
        self.pending = meta.size;
        self.pending_padding = padding(meta.size);
        Ok(meta)
    }

    /// The current entry's data as a reader (what is left unread is skipped by the next
    /// `next_entry`).
    pub(crate) fn entry_reader(&mut self) -> EntryData<'_, S> {
        EntryData { reader: self }
    }

    /// Copies the current entry's data to `out` (or skips it when `out` is `None`).
    pub(crate) fn copy_data(
        &mut self,
        out: Option<&mut dyn Write>,
        buf: &mut [u8],
    ) -> Result<(), TarError> {
        let Some(out) = out else {
            return self.skip_pending();
        };
        while self.pending > 0 {
            let want = buf
                .len()
                .min(usize::try_from(self.pending).unwrap_or(usize::MAX));
            let n = self.source.read(&mut buf[..want])?;
            if n == 0 {
                return Err(self.corrupt("truncated entry data"));
            }
            out.write_all(&buf[..n])?;
            self.pending -= n as u64;
            self.offset += n as u64;
        }
        self.skip_pending()
    }
}

/// Reads the data of one entry.
#[derive(Debug)]
pub(crate) struct EntryData<'a, S> {
    reader: &'a mut TarReader<S>,
}

impl<S: Source> Read for EntryData<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let reader = &mut *self.reader;
        let want = buf
            .len()
            .min(usize::try_from(reader.pending).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = reader.source.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated entry data",
            ));
        }
        reader.pending -= n as u64;
        reader.offset += n as u64;
        Ok(n)
    }
}

fn unsupported(path: &[u8], what: &str) -> TarError {
    TarError::Unsupported {
        path: String::from_utf8_lossy(path).into_owned(),
        what: what.to_owned(),
    }
}

fn trim_nul(mut name: Vec<u8>) -> Vec<u8> {
    while name.last() == Some(&0) {
        name.pop();
    }
    name
}

/// Zero bytes that pad `size` bytes of data to a whole block.
pub(crate) fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// Encodes `meta` as header blocks (a PAX header first when a field does not fit ustar).
/// Numbers too large for octal use base-256, which Go reads in every format.
pub(crate) fn encode_header(meta: &Meta, out: &mut Vec<u8>) {
    let mut records: Vec<(&[u8], &[u8])> = meta
        .pax
        .iter()
        .map(|(key, value)| (key.as_slice(), value.as_slice()))
        .collect();
    if meta.path.len() > 100 {
        records.push((b"path", &meta.path));
    }
    if meta.link.len() > 100 {
        records.push((b"linkpath", &meta.link));
    }
    let has = |key: &[u8]| meta.pax.iter().any(|(k, _)| k == key);
    if meta.uname.len() > 32 && !has(b"uname") {
        records.push((b"uname", &meta.uname));
    }
    if meta.gname.len() > 32 && !has(b"gname") {
        records.push((b"gname", &meta.gname));
    }
    if !records.is_empty() {
        let mut data = Vec::new();
        for (key, value) in &records {
            pax_record(key, value, &mut data);
        }
        let mut pax = tar::Header::new_ustar();
        set_name(&mut pax, b"././@PaxHeader");
        pax.set_mode(0o644);
        pax.set_size(data.len() as u64);
        pax.set_mtime(0);
        pax.set_uid(0);
        pax.set_gid(0);
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_cksum();
        out.extend_from_slice(pax.as_bytes());
        out.extend_from_slice(&data);
        out.resize(out.len() + padding(data.len() as u64) as usize, 0);
    }
    let mut header = tar::Header::new_ustar();
    set_name(&mut header, &meta.path);
    header.set_mode(meta.mode);
    header.set_uid(meta.uid);
    header.set_gid(meta.gid);
    header.set_size(meta.size);
    header.set_mtime(meta.mtime);
    header.set_entry_type(tar::EntryType::new(meta.typeflag));
    {
        let ustar = header.as_ustar_mut().expect("ustar header");
        let link = &meta.link[..meta.link.len().min(100)];
        ustar.linkname[..link.len()].copy_from_slice(link);
        let uname = &meta.uname[..meta.uname.len().min(32)];
        ustar.uname[..uname.len()].copy_from_slice(uname);
        let gname = &meta.gname[..meta.gname.len().min(32)];
        ustar.gname[..gname.len()].copy_from_slice(gname);
    }
    if matches!(meta.typeflag, CHAR | BLOCK_DEV) {
        // Both setters only fail on non-ustar headers.
        let _ = header.set_device_major(meta.dev_major);
        let _ = header.set_device_minor(meta.dev_minor);
    }
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
}

fn set_name(header: &mut tar::Header, name: &[u8]) {
    let field = &mut header.as_old_mut().name;
    let name = &name[..name.len().min(100)];
    field[..name.len()].copy_from_slice(name);
}

/// One PAX record: "<length> <key>=<value>\n", where the length counts itself.
fn pax_record(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut length = body + 1;
    while length != body + length.to_string().len() {
        length = body + length.to_string().len();
    }
    out.extend_from_slice(length.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<Meta>, TarError> {
        let mut reader = TarReader::new(Sequential(bytes));
        let mut out = Vec::new();
        while let Some(meta) = reader.next_entry()? {
            out.push(meta);
        }
        Ok(out)
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for (key, value, expected) in [
            (&b"path"[..], &b"a"[..], &b"9 path=a\n"[..]),
            (b"k", &[b'v'; 5], b"11 k=vvvvv\n"),
            (b"k", &[b'v'; 94], &[]),
        ] {
            let mut out = Vec::new();
            pax_record(key, value, &mut out);
            let (length, _) = std::str::from_utf8(&out).unwrap().split_once(' ').unwrap();
            assert_eq!(length.parse::<usize>().unwrap(), out.len());
            if !expected.is_empty() {
                assert_eq!(out, expected);
            }
        }
    }

    #[test]
    fn encode_then_read_round_trips_long_names_xattrs_and_devices() {
        let long = [b'd'; 150]
            .iter()
            .chain(b"/file")
            .copied()
            .collect::<Vec<u8>>();
        let mut file = Meta::synthetic(long.clone(), REGULAR, 0o4755);
        file.size = 3;
        file.uid = 3_000_000_000;
        file.gid = 7;
        file.mtime = 1_700_000_000;
        file.uname = b"someone".to_vec();
        file.pax = vec![(b"SCHILY.xattr.user.k".to_vec(), b"v\0x".to_vec())];
        let mut link = Meta::synthetic(b"l".to_vec(), SYMLINK, 0o777);
        link.link = [b't'; 120].to_vec();
        let mut dev = Meta::synthetic(b"dev/null".to_vec(), CHAR, 0o666);
        dev.dev_major = 1;
        dev.dev_minor = 3;
        let mut bytes = Vec::new();
        encode_header(&file, &mut bytes);
        bytes.extend_from_slice(b"abc");
        bytes.resize(bytes.len() + 509, 0);
        encode_header(&link, &mut bytes);
        encode_header(&dev, &mut bytes);
        bytes.resize(bytes.len() + 1024, 0);
        let read = read_all(&bytes).unwrap();
        assert_eq!(read, vec![file, link, dev]);
    }

    #[test]
    fn header_only_types_carry_no_data_like_go() {
        let mut dir = Meta::synthetic(b"d/".to_vec(), DIRECTORY, 0o755);
        dir.size = 512;
        let mut bytes = Vec::new();
        let mut header = tar::Header::new_ustar();
        set_name(&mut header, b"d/");
        header.set_size(512);
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_cksum();
        bytes.extend_from_slice(header.as_bytes());
        // What follows is read as the next header, as Go reads it.
        dir.path = b"x".to_vec();
        dir.typeflag = REGULAR;
        dir.size = 0;
        encode_header(&dir, &mut bytes);
        bytes.resize(bytes.len() + 1024, 0);
        let read = read_all(&bytes).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].size, 0);
        assert_eq!(read[1].path, b"x");
    }

    #[test]
    fn refuses_oversized_extension_headers_without_allocating() {
        let mut header = tar::Header::new_ustar();
        set_name(&mut header, b"p");
        header.set_size(8 << 30);
        header.set_entry_type(tar::EntryType::XHeader);
        header.set_cksum();
        let error = read_all(header.as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("PAX header of 8589934592 bytes"),
            "{error}"
        );
    }

    #[test]
    fn refuses_bad_checksums_truncation_and_sparse_files() {
        let mut meta = Meta::synthetic(b"f".to_vec(), REGULAR, 0o644);
        meta.size = 10;
        let mut bytes = Vec::new();
        encode_header(&meta, &mut bytes);
        let mut reader = TarReader::new(Sequential(&bytes[..]));
        assert_eq!(reader.next_entry().unwrap().unwrap().path, b"f");
        assert!(
            reader
                .next_entry()
                .unwrap_err()
                .to_string()
                .contains("truncated entry data")
        );
        let mut bad = bytes.clone();
        bad[0] = b'g';
        assert!(read_all(&bad).unwrap_err().to_string().contains("checksum"));
        let mut sparse = tar::Header::new_gnu();
        sparse.set_path("s").unwrap();
        sparse.set_entry_type(tar::EntryType::GNUSparse);
        sparse.set_cksum();
        let mut bytes = sparse.as_bytes().to_vec();
        bytes.resize(2048, 0);
        assert!(read_all(&bytes).unwrap_err().to_string().contains("sparse"));
    }
}
