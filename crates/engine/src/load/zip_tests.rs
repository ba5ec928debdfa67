use super::*;
use crate::error::ErrorCode;

fn sample(zip64: bool) -> Vec<u8> {
    build_stored(&[("archive/data.pkl", b"\x80\x02}q\x00."), ("archive/data/0", &[1, 2, 3, 4, 5, 6, 7, 8]), ("archive/version", b"3\n")], zip64)
}

fn refused(b: &[u8], needle: &str) {
    let e = Archive::parse(b, "x.bin").expect_err("must be refused");
    assert_eq!(e.code, ErrorCode::CorruptFile, "{}", e.message);
    assert!(e.message.contains(needle), "{:?} does not mention {needle:?}", e.message);
}

/// Byte offset of the first central directory header.
fn central(b: &[u8]) -> usize {
    b.windows(4).position(|w| w == CENTRAL_SIG.to_le_bytes()).unwrap()
}

#[test]
fn reads_plain_and_zip64() {
    for zip64 in [false, true] {
        let b = sample(zip64);
        let a = Archive::parse(&b, "x.bin").unwrap();
        assert_eq!(a.entries().len(), 3);
        let e = a.get("archive/data/0").unwrap();
        assert_eq!(a.data(&b, e), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(crc32(a.data(&b, e)), e.crc32);
        assert_eq!(a.data(&b, a.get("archive/version").unwrap()), b"3\n");
        assert!(a.get("archive/data/1").is_none());
    }
}

#[test]
fn crc_matches_zlib() {
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn empty_archive_is_valid() {
    let b = build_stored(&[], false);
    assert_eq!(Archive::parse(&b, "x").unwrap().entries().len(), 0);
}

#[test]
fn refuses_non_zip_and_truncated() {
    refused(b"", "too short");
    refused(&[0u8; 100], "end-of-central-directory");
    let b = sample(false);
    refused(&b[..b.len() - 1], "end-of-central-directory");
    // Cutting the front moves every offset: the directory no longer fits.
    refused(&b[10..], "");
    let z = sample(true);
    refused(&z[..z.len() - 1], "end-of-central-directory");
}

#[test]
fn refuses_compression_and_encryption() {
    let mut b = sample(false);
    let c = central(&b);
    b[c + 10] = 8; // deflate
    refused(&b, "compression method 8");
    let mut b = sample(false);
    let c = central(&b);
    b[c + 8] |= 1;
    refused(&b, "encrypted");
}

#[test]
fn refuses_absurd_counts_and_offsets() {
    let mut b = sample(false);
    let n = b.len();
    b[n - 12..n - 10].copy_from_slice(&60000u16.to_le_bytes()); // total entries
    b[n - 14..n - 12].copy_from_slice(&60000u16.to_le_bytes()); // on this disk
    refused(&b, "claims 60000 entries");
    let mut b = sample(false);
    let n = b.len();
    b[n - 6..n - 2].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes()); // central directory offset
    refused(&b, "outside the file");
    // zip64: a huge entry count and a central directory offset past the end.
    for (at, v) in [(32usize, u64::MAX), (48, 1u64 << 62), (40, u64::MAX)] {
        let mut z = sample(true);
        let rec = z.len() - 22 - 20 - 56;
        z[rec + at..rec + at + 8].copy_from_slice(&v.to_le_bytes());
        let e = Archive::parse(&z, "x").expect_err("must be refused");
        assert_eq!(e.code, ErrorCode::CorruptFile);
    }
}

#[test]
fn refuses_entries_outside_or_overlapping() {
    // An entry whose size runs into the central directory.
    let mut b = sample(false);
    let c = central(&b);
    b[c + 20..c + 28].copy_from_slice(&[0xFF, 0xFF, 0, 0, 0xFF, 0xFF, 0, 0]);
    refused(&b, "runs past");
    // The second entry's local header offset pointing at the first one's.
    let mut b = sample(false);
    let c = central(&b);
    let second = c + CENTRAL_LEN + "archive/data.pkl".len();
    b[second + 42..second + 46].copy_from_slice(&0u32.to_le_bytes());
    refused(&b, "names another file");
    // Two entries of the same name.
    let b = build_stored(&[("a", b"x"), ("a", b"y")], false);
    refused(&b, "appears twice");
    // Overlap: entry "b"'s local header and data lie inside entry "a"'s data.
    let inner = build_stored(&[("b", b"zz")], false);
    let local_b = &inner[..LOCAL_LEN + 1 + 2];
    let mut b = build_stored(&[("a", local_b), ("b", b"zz")], false);
    let c = central(&b);
    let second = c + CENTRAL_LEN + 1;
    b[second + 42..second + 46].copy_from_slice(&((LOCAL_LEN + 1) as u32).to_le_bytes());
    refused(&b, "overlap");
}

#[test]
fn refuses_missing_zip64_extra() {
    let mut z = sample(true);
    let c = central(&z);
    z[c + 30..c + 32].copy_from_slice(&0u16.to_le_bytes()); // drop the extra field's length
    // The entry now reads the extra bytes as its comment-less successor: refused either way.
    assert_eq!(Archive::parse(&z, "x").unwrap_err().code, ErrorCode::CorruptFile);
}

#[test]
fn arbitrary_damage_never_panics() {
    let b = sample(true);
    let mut s = 0x1234_5678u64;
    for _ in 0..4000 {
        let mut m = b.clone();
        for _ in 0..3 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let at = (s as usize) % m.len();
            m[at] = (s >> 32) as u8;
        }
        if let Ok(a) = Archive::parse(&m, "x") {
            for e in a.entries() {
                assert!(e.start + e.size <= m.len() as u64);
            }
        }
    }
}
