//! A minimal, hardened reader of the zip container `torch.save` writes: uncompressed (stored)
//! entries, zip64 records (torch writes them for every file), data descriptors and the padding
//! extra fields that align each record. It reads a mapped file: every offset and size is checked
//! against the file before it is used, and nothing is allocated from a size field (entries cost
//! at least their 46-byte central header each). Anything else — compression, encryption,
//! multi-disk archives, entries that overlap or leave the file, duplicate names — is
//! `TL_CORRUPT_FILE` naming the problem.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// One stored entry: where its bytes are in the file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// File offset of the entry's first data byte.
    pub start: u64,
    pub size: u64,
    pub crc32: u32,
}

/// The entries of an archive, by name.
#[derive(Debug)]
pub struct Archive {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

const EOCD_SIG: u32 = 0x0605_4b50;
const Z64_LOCATOR_SIG: u32 = 0x0706_4b50;
const Z64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// The bytes `[start, start + len)` of `b`, if they are inside it.
pub fn slice(b: &[u8], start: u64, len: u64) -> Option<&[u8]> {
    let s = usize::try_from(start).ok()?;
    let e = s.checked_add(usize::try_from(len).ok()?)?;
    b.get(s..e)
}

/// The central directory's place and entry count, from the (zip64) end records.
struct End {
    cd_offset: u64,
    cd_size: u64,
    count: u64,
    /// Where the records after the central directory begin (nothing may reach past it).
    limit: u64,
}

fn find_end(b: &[u8], bad: &dyn Fn(&str) -> Error) -> Result<End> {
    if b.len() < EOCD_LEN {
        return Err(bad("too short to be a zip archive"));
    }
    // The end record is the last 22 bytes plus a comment of at most 65535 bytes; take the last
    // signature whose comment length reaches exactly the end of the file.
    let lowest = b.len().saturating_sub(EOCD_LEN + 0xFFFF);
    let eocd = (lowest..=b.len() - EOCD_LEN)
        .rev()
        .find(|&p| u32_at(b, p) == Some(EOCD_SIG) && u16_at(b, p + 20).map(|c| p + EOCD_LEN + c as usize) == Some(b.len()))
        .ok_or_else(|| bad("no end-of-central-directory record (not a zip archive, or truncated)"))?;
    let r16 = |o| u16_at(b, eocd + o).unwrap_or(0);
    let r32 = |o| u32_at(b, eocd + o).unwrap_or(0);
    let (disk, cd_disk, on_disk, count) = (r16(4), r16(6), r16(8), r16(10));
    let (cd_size, cd_offset) = (r32(12), r32(16));
    let has_locator = eocd >= 20 && u32_at(b, eocd - 20) == Some(Z64_LOCATOR_SIG);
    let needs_z64 = count == 0xFFFF || on_disk == 0xFFFF || cd_size == u32::MAX || cd_offset == u32::MAX;
    if !has_locator {
        if needs_z64 {
            return Err(bad("the end record defers to a zip64 record that is missing"));
        }
        if disk != 0 || cd_disk != 0 || on_disk != count {
            return Err(bad("multi-disk archives are not supported"));
        }
        return Ok(End { cd_offset: cd_offset as u64, cd_size: cd_size as u64, count: count as u64, limit: eocd as u64 });
    }
    let loc = eocd - 20;
    let (z_disk, z_at, disks) = (u32_at(b, loc + 4).unwrap_or(1), u64_at(b, loc + 8).unwrap_or(u64::MAX), u32_at(b, loc + 16).unwrap_or(0));
    if z_disk != 0 || disks > 1 {
        return Err(bad("multi-disk archives are not supported"));
    }
    let z = usize::try_from(z_at).ok().filter(|&z| z.checked_add(56).is_some_and(|e| e <= loc));
    let z = z.filter(|&z| u32_at(b, z) == Some(Z64_EOCD_SIG)).ok_or_else(|| bad("the zip64 end record is missing or out of place"))?;
    let (disk, cd_disk) = (u32_at(b, z + 16).unwrap_or(1), u32_at(b, z + 20).unwrap_or(1));
    let (on_disk, count) = (u64_at(b, z + 24).unwrap_or(0), u64_at(b, z + 32).unwrap_or(0));
    if disk != 0 || cd_disk != 0 || on_disk != count {
        return Err(bad("multi-disk archives are not supported"));
    }
    Ok(End { cd_size: u64_at(b, z + 40).unwrap_or(u64::MAX), cd_offset: u64_at(b, z + 48).unwrap_or(u64::MAX), count, limit: z as u64 })
}

/// The zip64 extended-information extra field: the 64-bit values of the fields set to all ones.
fn zip64_extra(extra: &[u8], wanted: [bool; 3], bad: &dyn Fn(&str) -> Error) -> Result<[Option<u64>; 3]> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let (id, len) = (u16_at(extra, at).unwrap_or(0), u16_at(extra, at + 2).unwrap_or(0) as usize);
        let body = extra.get(at + 4..at + 4 + len).ok_or_else(|| bad("an extra field runs past its header"))?;
        if id == 0x0001 {
            let mut out = [None; 3];
            let mut p = 0;
            for (i, w) in wanted.iter().enumerate() {
                if *w {
                    out[i] = Some(u64_at(body, p).ok_or_else(|| bad("the zip64 extra field is too short"))?);
                    p += 8;
                }
            }
            return Ok(out);
        }
        at += 4 + len;
    }
    if wanted.iter().any(|w| *w) {
        return Err(bad("an entry defers to a zip64 extra field that is missing"));
    }
    Ok([None; 3])
}

impl Archive {
    /// Reads the central directory of `b` (the whole file) and checks every entry.
    pub fn parse(b: &[u8], what: &str) -> Result<Archive> {
        let bad = |why: &str| Error::corrupt(format!("{what} is not a valid PyTorch zip archive: {why}"));
        let end = find_end(b, &bad)?;
        let cd_end = end.cd_offset.checked_add(end.cd_size).filter(|&e| e <= end.limit);
        let cd = cd_end.and_then(|_| slice(b, end.cd_offset, end.cd_size)).ok_or_else(|| bad("the central directory lies outside the file"))?;
        if end.count > (cd.len() / CENTRAL_LEN) as u64 {
            return Err(bad(&format!("the archive claims {} entries, more than its central directory can hold", end.count)));
        }
        let mut entries: Vec<Entry> = Vec::new();
        let mut spans: Vec<(u64, u64)> = Vec::new();
        let mut by_name = HashMap::new();
        let mut at = 0usize;
        for i in 0..end.count {
            if u32_at(cd, at) != Some(CENTRAL_SIG) {
                return Err(bad(&format!("central directory entry {i} has no valid signature")));
            }
            let h = |o: usize| u16_at(cd, at + o).unwrap_or(0);
            let (flags, method) = (h(8), h(10));
            let crc32 = u32_at(cd, at + 16).unwrap_or(0);
            let (csize, usize_, n, e, c, disk) = (u32_at(cd, at + 20).unwrap_or(0), u32_at(cd, at + 24).unwrap_or(0), h(28) as usize, h(30) as usize, h(32) as usize, h(34));
            let local = u32_at(cd, at + 42).unwrap_or(0);
            let var = cd.get(at + CENTRAL_LEN..at + CENTRAL_LEN + n + e + c).ok_or_else(|| bad(&format!("central directory entry {i} runs past the directory")))?;
            let name = std::str::from_utf8(&var[..n]).map_err(|_| bad(&format!("entry {i}'s name is not UTF-8")))?.to_string();
            let ebad = |why: &str| bad(&format!("entry {name:?}: {why}"));
            if flags & 0x41 != 0 {
                return Err(ebad("encrypted entries are not supported"));
            }
            if method != 0 {
                return Err(ebad(&format!("compression method {method}; torch.save writes stored (uncompressed) entries")));
            }
            let z = zip64_extra(&var[n..n + e], [usize_ == u32::MAX, csize == u32::MAX, local == u32::MAX], &ebad)?;
            let size = z[0].unwrap_or(usize_ as u64);
            let csize = z[1].unwrap_or(csize as u64);
            let local = z[2].unwrap_or(local as u64);
            if disk != 0 && disk != 0xFFFF {
                return Err(ebad("entries on another disk are not supported"));
            }
            if csize != size {
                return Err(ebad(&format!("a stored entry of {size} bytes has a compressed size of {csize}")));
            }
            let lh = slice(b, local, LOCAL_LEN as u64).filter(|_| local < end.cd_offset).ok_or_else(|| ebad("its local header lies outside the file"))?;
            if u32_at(lh, 0) != Some(LOCAL_SIG) {
                return Err(ebad("its local header has no valid signature"));
            }
            if u16_at(lh, 8) != Some(method) {
                return Err(ebad("its local header disagrees with the central directory on the compression method"));
            }
            let (ln, le) = (u16_at(lh, 26).unwrap_or(0) as u64, u16_at(lh, 28).unwrap_or(0) as u64);
            if slice(b, local + LOCAL_LEN as u64, ln) != Some(name.as_bytes()) {
                return Err(ebad("its local header names another file"));
            }
            let start = local + LOCAL_LEN as u64 + ln + le;
            let data_end = start.checked_add(size).filter(|&x| x <= end.cd_offset).ok_or_else(|| ebad("its data runs past the start of the central directory"))?;
            if by_name.insert(name.clone(), entries.len()).is_some() {
                return Err(ebad("the name appears twice"));
            }
            spans.push((local, data_end));
            entries.push(Entry { name, start, size, crc32 });
            at += CENTRAL_LEN + n + e + c;
        }
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err(bad("two entries overlap"));
        }
        Ok(Archive { entries, by_name })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// An entry's bytes (checked to lie inside the file when the archive was read).
    pub fn data<'a>(&self, b: &'a [u8], e: &Entry) -> &'a [u8] {
        slice(b, e.start, e.size).unwrap_or(&[])
    }
}

/// CRC-32 (IEEE), as zip stores it.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, x) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
            *x = c;
        }
        t
    });
    !data.iter().fold(!0u32, |c, &b| t[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8))
}

/// A zip of stored entries, for tests and fuzzing: with `zip64`, every size and offset is
/// deferred to zip64 extra fields and zip64 end records, as torch writes them for large files.
#[doc(hidden)]
pub fn build_stored(entries: &[(&str, &[u8])], zip64: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let off = out.len() as u64;
        let (size32, off32) = if zip64 { (u32::MAX, u32::MAX) } else { (data.len() as u32, off as u32) };
        let crc = crc32(data);
        out.extend(LOCAL_SIG.to_le_bytes());
        out.extend([20, 0, 0, 8, 0, 0, 0, 0, 0, 0]);
        out.extend(crc.to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend_from_slice(data);
        central.extend(CENTRAL_SIG.to_le_bytes());
        central.extend([45, 3, 45, 0, 0, 8, 0, 0, 0, 0, 0, 0]);
        central.extend(crc.to_le_bytes());
        central.extend(size32.to_le_bytes());
        central.extend(size32.to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend((if zip64 { 28u16 } else { 0 }).to_le_bytes());
        central.extend([0u8; 10]);
        central.extend(off32.to_le_bytes());
        central.extend(name.as_bytes());
        if zip64 {
            central.extend([1, 0, 24, 0]);
            for v in [data.len() as u64, data.len() as u64, off] {
                central.extend(v.to_le_bytes());
            }
        }
    }
    let (cd_off, cd_len, n) = (out.len() as u64, central.len() as u64, entries.len() as u64);
    out.extend(central);
    if zip64 {
        let z = out.len() as u64;
        out.extend(Z64_EOCD_SIG.to_le_bytes());
        out.extend(44u64.to_le_bytes());
        out.extend([45, 3, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for v in [n, n, cd_len, cd_off] {
            out.extend(v.to_le_bytes());
        }
        out.extend(Z64_LOCATOR_SIG.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(z.to_le_bytes());
        out.extend(1u32.to_le_bytes());
    }
    out.extend(EOCD_SIG.to_le_bytes());
    out.extend([0u8; 4]);
    let n16 = if zip64 { 0xFFFF } else { n as u16 };
    out.extend(n16.to_le_bytes());
    out.extend(n16.to_le_bytes());
    out.extend((if zip64 { u32::MAX } else { cd_len as u32 }).to_le_bytes());
    out.extend((if zip64 { u32::MAX } else { cd_off as u32 }).to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[cfg(test)]
#[path = "zip_tests.rs"]
mod tests;
