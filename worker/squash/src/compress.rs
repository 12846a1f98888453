//! How the squashed layer is stored in the registry, and the writer that applies it.
//!
//! The default is an uncompressed layer (`...rootfs.diff.tar` / `...layer.v1.tar`, which
//! Docker 20.10 pulls like any other): measured on 2 cores (docs/BENCHMARKS.md), even
//! level-1 gzip of a 545 MB layer costs more than the whole squash, because deflate runs
//! on one core while the engine's export and the registry need the other.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

/// The squashed layer's encoding in the registry (base layers keep the registry's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    /// A plain tar: no CPU spent, more bytes stored and pulled.
    #[default]
    None,
    /// gzip at `level` (1 fastest … 9 smallest), one stream on one core.
    Gzip { level: u32 },
}

impl LayerCompression {
    pub fn is_gzip(self) -> bool {
        matches!(self, LayerCompression::Gzip { .. })
    }

    /// Wraps `out` so that what is written to the result reaches `out` encoded.
    pub(crate) fn writer<W: Write>(self, out: W) -> Encoder<W> {
        match self {
            LayerCompression::None => Encoder::Plain(out),
            LayerCompression::Gzip { level } => Encoder::Gzip(Box::new(
                flate2::write::GzEncoder::new(out, flate2::Compression::new(level.min(9))),
            )),
        }
    }
}

impl fmt::Display for LayerCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerCompression::None => f.write_str("none"),
            LayerCompression::Gzip { level } => write!(f, "gzip:{level}"),
        }
    }
}

impl FromStr for LayerCompression {
    type Err = String;

    /// `none`, `gzip` (level 1) or `gzip:LEVEL` (1–9).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{text}' is not a layer compression; give none, gzip or gzip:1..9");
        match text.split_once(':') {
            None if text == "none" => Ok(LayerCompression::None),
            None if text == "gzip" => Ok(LayerCompression::Gzip { level: 1 }),
            Some(("gzip", level)) => match level.parse::<u32>() {
                Ok(level @ 1..=9) => Ok(LayerCompression::Gzip { level }),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

/// The encoding writer; [`Encoder::finish`] writes the trailer and gives `out` back.
#[derive(Debug)]
pub(crate) enum Encoder<W: Write> {
    Plain(W),
    Gzip(Box<flate2::write::GzEncoder<W>>),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(mut out) => {
                out.flush()?;
                Ok(out)
            }
            Encoder::Gzip(encoder) => encoder.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(out) => out.write(buf),
            Encoder::Gzip(encoder) => encoder.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(out) => out.write_all(buf),
            Encoder::Gzip(encoder) => encoder.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(out) => out.flush(),
            Encoder::Gzip(encoder) => encoder.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn compression_names_round_trip_and_bad_ones_are_refused() {
        for (text, parsed, shown) in [
            ("none", LayerCompression::None, "none"),
            ("gzip", LayerCompression::Gzip { level: 1 }, "gzip:1"),
            ("gzip:6", LayerCompression::Gzip { level: 6 }, "gzip:6"),
        ] {
            let got: LayerCompression = text.parse().unwrap();
            assert_eq!(got, parsed);
            assert_eq!(got.to_string(), shown);
            assert_eq!(shown.parse::<LayerCompression>().unwrap(), parsed);
        }
        for bad in ["", "zstd", "gzip:0", "gzip:10", "gzip:x", "none:1"] {
            let error = bad.parse::<LayerCompression>().unwrap_err();
            assert!(error.contains("none, gzip or gzip:1..9"), "{error}");
        }
    }

    #[test]
    fn encoders_give_back_what_was_written() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for compression in [LayerCompression::None, LayerCompression::Gzip { level: 1 }] {
            let mut encoder = compression.writer(Vec::new());
            encoder.write_all(&data).unwrap();
            let encoded = encoder.finish().unwrap();
            let decoded = if compression.is_gzip() {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&encoded[..])
                    .read_to_end(&mut out)
                    .unwrap();
                assert!(encoded.len() < data.len());
                out
            } else {
                encoded
            };
            assert_eq!(decoded, data, "{compression}");
        }
    }
}
