//! A streaming writer of the zip container `torch.save` writes: stored (uncompressed) entries,
//! each record's data aligned to 64 bytes with a padding extra field (as torch aligns them), and
//! zip64 records only where a size, an offset or the entry count needs them. The reader in
//! `zip.rs` reads what this writes; so do `torch.load` and Python's `zipfile`.

use std::io::Write;

use crate::error::{Error, Result};
use crate::load::zip::crc32;

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const Z64_EOCD_SIG: u32 = 0x0606_4b50;
const Z64_LOCATOR_SIG: u32 = 0x0706_4b50;
const LOCAL_LEN: u64 = 30;
/// Record data starts at a multiple of this (torch's `kFieldAlignment`).
pub const ALIGNMENT: u64 = 64;
/// The padding extra field's id, `FB`, as torch's writer uses.
const PAD_ID: u16 = 0x4246;
const U32_LIMIT: u64 = u32::MAX as u64;

/// Entries written so far, for the central directory.
struct Written {
    name: String,
    offset: u64,
    size: u64,
    crc: u32,
}

/// Writes stored entries one after another to `out`, then the central directory on `finish`.
pub struct ZipWriter<W: Write> {
    out: W,
    pos: u64,
    entries: Vec<Written>,
}

fn le16(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}
fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

impl<W: Write> ZipWriter<W> {
    pub fn new(out: W) -> Self {
        ZipWriter { out, pos: 0, entries: Vec::new() }
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    /// One stored entry named `name` holding `data`, its data aligned to [`ALIGNMENT`].
    pub fn add(&mut self, name: &str, data: &[u8]) -> Result<()> {
        if name.len() > u16::MAX as usize - 1 || self.entries.iter().any(|e| e.name == name) {
            return Err(Error::invalid(format!("zip entry name {name:?} is too long or given twice")));
        }
        let offset = self.pos;
        let size = data.len() as u64;
        let crc = crc32(data);
        let zip64 = size >= U32_LIMIT;
        // Local header: zip64 sizes go in a zip64 extra field, then padding up to the alignment.
        let z64_extra: Vec<u8> = if zip64 { [&le16(1)[..], &le16(16), &size.to_le_bytes(), &size.to_le_bytes()].concat() } else { Vec::new() };
        let before_pad = offset + LOCAL_LEN + name.len() as u64 + z64_extra.len() as u64;
        // A padding field is at least its 4-byte header.
        let mut pad = (ALIGNMENT - (before_pad + 4) % ALIGNMENT) % ALIGNMENT;
        if pad > u16::MAX as u64 {
            pad = 0;
        }
        let mut header = Vec::with_capacity(LOCAL_LEN as usize + name.len() + 4 + pad as usize + z64_extra.len());
        let size32 = if zip64 { u32::MAX } else { size as u32 };
        header.extend(le32(LOCAL_SIG));
        header.extend(le16(if zip64 { 45 } else { 20 }));
        header.extend(le16(0)); // flags
        header.extend(le16(0)); // stored
        header.extend(le16(0)); // time
        header.extend(le16(0x21)); // date: 1980-01-01
        header.extend(le32(crc));
        header.extend(le32(size32));
        header.extend(le32(size32));
        header.extend(le16(name.len() as u16));
        header.extend(le16((z64_extra.len() as u64 + 4 + pad) as u16));
        header.extend(name.as_bytes());
        header.extend(&z64_extra);
        header.extend(le16(PAD_ID));
        header.extend(le16(pad as u16));
        header.resize(header.len() + pad as usize, b'Z');
        self.put(&header)?;
        self.put(data)?;
        self.entries.push(Written { name: name.to_string(), offset, size, crc });
        Ok(())
    }

    /// The central directory and end records; returns the writer.
    pub fn finish(mut self) -> Result<W> {
        let cd_offset = self.pos;
        let mut central = Vec::new();
        for e in &self.entries {
            let zip64 = e.size >= U32_LIMIT || e.offset >= U32_LIMIT;
            let extra: Vec<u8> = if zip64 {
                [&le16(1)[..], &le16(24), &e.size.to_le_bytes(), &e.size.to_le_bytes(), &e.offset.to_le_bytes()].concat()
            } else {
                Vec::new()
            };
            let (size32, off32) = if zip64 { (u32::MAX, u32::MAX) } else { (e.size as u32, e.offset as u32) };
            central.extend(le32(CENTRAL_SIG));
            central.extend(le16(if zip64 { 45 } else { 20 })); // made by
            central.extend(le16(if zip64 { 45 } else { 20 })); // needed
            central.extend(le16(0));
            central.extend(le16(0));
            central.extend(le16(0));
            central.extend(le16(0x21));
            central.extend(le32(e.crc));
            central.extend(le32(size32));
            central.extend(le32(size32));
            central.extend(le16(e.name.len() as u16));
            central.extend(le16(extra.len() as u16));
            central.extend(le16(0)); // comment
            central.extend(le16(0)); // disk
            central.extend(le16(0)); // internal attributes
            central.extend(le32(0)); // external attributes
            central.extend(le32(off32));
            central.extend(e.name.as_bytes());
            central.extend(&extra);
        }
        self.put(&central)?;
        let cd_size = central.len() as u64;
        let n = self.entries.len() as u64;
        let zip64 = n >= 0xFFFF || cd_offset >= U32_LIMIT || cd_size >= U32_LIMIT;
        let mut end = Vec::new();
        if zip64 {
            let z64_at = self.pos;
            end.extend(le32(Z64_EOCD_SIG));
            end.extend(44u64.to_le_bytes());
            end.extend(le16(45));
            end.extend(le16(45));
            end.extend(le32(0));
            end.extend(le32(0));
            for v in [n, n, cd_size, cd_offset] {
                end.extend(v.to_le_bytes());
            }
            end.extend(le32(Z64_LOCATOR_SIG));
            end.extend(le32(0));
            end.extend(z64_at.to_le_bytes());
            end.extend(le32(1));
        }
        let n16 = if zip64 { 0xFFFF } else { n as u16 };
        end.extend(le32(EOCD_SIG));
        end.extend(le16(0));
        end.extend(le16(0));
        end.extend(le16(n16));
        end.extend(le16(n16));
        end.extend(le32(if zip64 { u32::MAX } else { cd_size as u32 }));
        end.extend(le32(if zip64 { u32::MAX } else { cd_offset as u32 }));
        end.extend(le16(0));
        self.put(&end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::zip::Archive;

    #[test]
    fn written_archives_read_back_with_aligned_data() {
        let mut w = ZipWriter::new(Vec::new());
        w.add("a/data.pkl", b"hello").unwrap();
        w.add("a/data/0", &[1, 2, 3, 4, 5, 6, 7]).unwrap();
        w.add("a/version", b"3\n").unwrap();
        let bytes = w.finish().unwrap();
        let archive = Archive::parse(&bytes, "test").unwrap();
        for (name, want) in [("a/data.pkl", &b"hello"[..]), ("a/data/0", &[1, 2, 3, 4, 5, 6, 7]), ("a/version", b"3\n")] {
            let e = archive.get(name).unwrap();
            assert_eq!(e.start % ALIGNMENT, 0, "{name} is aligned");
            assert_eq!(archive.data(&bytes, e), want);
            assert_eq!(e.crc32, crc32(want));
        }
    }

    #[test]
    fn a_name_given_twice_is_refused() {
        let mut w = ZipWriter::new(Vec::new());
        w.add("x", b"1").unwrap();
        assert_eq!(w.add("x", b"2").unwrap_err().code, crate::error::ErrorCode::InvalidArgument);
    }
}
