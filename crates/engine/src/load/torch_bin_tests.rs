use super::*;
use crate::error::ErrorCode;
use crate::load::torch_write::{checkpoint, contiguous, state_dict_pickle};

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(tag: &str) -> Tmp {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!("tl-torch-bin-{}-{tag}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write(dir: &Tmp, bytes: &[u8]) -> PathBuf {
    let p = dir.0.join("pytorch_model.bin");
    std::fs::write(&p, bytes).unwrap();
    p
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// `w` [2,3] over storage 0; `wt`, its transpose (a strided view of the same storage); `b`, an
/// f16 [3] at offset 1 of storage 1; `big`, a 300x301 f32 (the parallel read).
fn sample(zip64: bool) -> (Vec<u8>, Vec<f32>) {
    let w = contiguous("0", StorageDtype::F32, &[2, 3]);
    let wt = TensorRef { shape: vec![3, 2], stride: vec![1, 3], ..w.clone() };
    let b = TensorRef { offset: 1, storage_len: 4, ..contiguous("1", StorageDtype::F16, &[3]) };
    let big = contiguous("2", StorageDtype::F32, &[300, 301]);
    let big_vals: Vec<f32> = (0..300 * 301).map(|i| (i % 977) as f32 * 0.5 - 100.0).collect();
    let sd = vec![("w".into(), w), ("wt".into(), wt), ("b".into(), b), ("big".into(), big)];
    let halves: Vec<u8> = [9.0f32, 1.0, -2.0, 0.25].iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect();
    let storages = vec![("0".to_string(), f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])), ("1".to_string(), halves), ("2".to_string(), f32s(&big_vals))];
    (checkpoint("archive", &state_dict_pickle(&sd), &storages, zip64), big_vals)
}

#[test]
fn loads_contiguous_strided_offset_and_converted() {
    for zip64 in [false, true] {
        let d = tmp("ok");
        let (bytes, big) = sample(zip64);
        let f = TorchFile::open(&write(&d, &bytes)).unwrap();
        let names: Vec<&str> = f.tensors().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["w", "wt", "b", "big"]);
        let cpu = Device::Cpu;
        assert_eq!(values(&f.load("w", DType::F32, &cpu).unwrap()), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let wt = f.load("wt", DType::F32, &cpu).unwrap();
        assert_eq!(wt.dims(), [3, 2]);
        assert_eq!(values(&wt), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        let b = f.load("b", DType::F32, &cpu).unwrap();
        assert_eq!(values(&b), [1.0, -2.0, 0.25]);
        assert_eq!(f.load("b", DType::F16, &cpu).unwrap().dtype(), DType::F16);
        assert_eq!(values(&f.load("big", DType::F32, &cpu).unwrap()), big);
        assert_eq!(f.load("nope", DType::F32, &cpu).unwrap_err().code, ErrorCode::MissingWeight);
    }
}

fn refused(bytes: &[u8], code: ErrorCode, needle: &str) {
    let d = tmp("bad");
    let e = TorchFile::open(&write(&d, bytes)).err().expect("must be refused");
    assert_eq!(e.code, code, "{}", e.message);
    assert!(e.message.contains(needle), "{:?} does not mention {needle:?}", e.message);
}

#[test]
fn refuses_bad_archives() {
    refused(b"", ErrorCode::CorruptFile, "not a PyTorch checkpoint");
    refused(b"hello world, not a zip", ErrorCode::CorruptFile, "not a PyTorch checkpoint");
    refused(&[0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc], ErrorCode::CorruptFile, "not a PyTorch checkpoint");
    let t = vec![("w".to_string(), contiguous("0", StorageDtype::F32, &[2]))];
    let pkl = state_dict_pickle(&t);
    refused(&checkpoint("a", &pkl, &[], false), ErrorCode::CorruptFile, "lacks");
    refused(&checkpoint("a", &pkl, &[("0".into(), vec![0; 7])], false), ErrorCode::CorruptFile, "holds 7 bytes");
    let ok = checkpoint("a", &pkl, &[("0".into(), vec![0; 8])], false);
    let d = tmp("ok");
    assert!(TorchFile::open(&write(&d, &ok)).is_ok());
    // A flipped byte in data.pkl fails its CRC.
    let mut bad = ok.clone();
    let at = bad.windows(8).position(|w| w == b"_rebuild").unwrap();
    bad[at] = b'X';
    refused(&bad, ErrorCode::CorruptFile, "CRC");
    // Byte order.
    let mut big = ok.clone();
    let at = big.windows(6).position(|w| w == b"little").unwrap();
    big[at..at + 6].copy_from_slice(b"big\0\0\0");
    assert!(TorchFile::open(&write(&d, &big)).is_err());
    // No data.pkl, and a forbidden global in it.
    refused(&crate::load::zip::build_stored(&[("a/version", b"3\n")], false), ErrorCode::CorruptFile, "no a/data.pkl");
    let evil = [&[0x80, 2][..], b"cposix\nsystem\n(X\x02\x00\x00\x00lstR."].concat();
    refused(&checkpoint("a", &evil, &[], false), ErrorCode::CorruptFile, "`posix.system`");
}

#[test]
fn refuses_non_finite_and_non_float() {
    let d = tmp("nan");
    let sd = vec![("w".to_string(), contiguous("0", StorageDtype::F32, &[2])), ("i".to_string(), contiguous("1", StorageDtype::I64, &[2]))];
    let bytes = checkpoint("a", &state_dict_pickle(&sd), &[("0".into(), f32s(&[1.0, f32::NAN])), ("1".into(), vec![0; 16])], false);
    let f = TorchFile::open(&write(&d, &bytes)).unwrap();
    assert_eq!(f.load("w", DType::F32, &Device::Cpu).unwrap_err().code, ErrorCode::CorruptFile);
    assert_eq!(f.load("w", DType::BF16, &Device::Cpu).unwrap_err().code, ErrorCode::CorruptFile);
    let e = f.load("i", DType::F32, &Device::Cpu).unwrap_err();
    assert!(e.message.contains("I64"), "{}", e.message);
    assert_eq!(candle_dtype(f.get("i").unwrap().dtype), Some(DType::I64));
}

/// torch's legacy format: magic, protocol, system info, the state dict, the keys, the storages.
fn legacy(sd: &[(String, TensorRef)], keys: &[&str], records: &[(u64, Vec<u8>)], little: bool) -> Vec<u8> {
    use crate::load::torch_write::Pickler;
    let mut out = crate::load::torch_legacy::MAGIC.to_vec();
    out.extend(b"\x80\x02M\xe9\x03.");
    let mut info = Pickler::new();
    info.op(b"}(").str("protocol_version").int(1001).str("little_endian").op(if little { &[0x88] } else { &[0x89] }).op(b"u.");
    out.extend(info.out);
    out.extend(state_dict_pickle(sd));
    let mut k = Pickler::new();
    k.op(b"](");
    for key in keys {
        k.str(key);
    }
    out.extend(k.op(b"e.").out.clone());
    for (numel, bytes) in records {
        out.extend(numel.to_le_bytes());
        out.extend(bytes);
    }
    out
}

#[test]
fn reads_the_legacy_format() {
    let w = contiguous("10", StorageDtype::F32, &[2, 2]);
    let wt = TensorRef { stride: vec![1, 2], ..w.clone() };
    let b = contiguous("9", StorageDtype::F16, &[3]);
    let sd = vec![("w".to_string(), w), ("wt".to_string(), wt), ("b".to_string(), b)];
    let halves: Vec<u8> = [0.5f32, 1.0, -3.0].iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect();
    let records = vec![(4, f32s(&[1.0, 2.0, 3.0, 4.0])), (3, halves)];
    let d = tmp("legacy");
    let f = TorchFile::open(&write(&d, &legacy(&sd, &["10", "9"], &records, true))).unwrap();
    assert_eq!(values(&f.load("w", DType::F32, &Device::Cpu).unwrap()), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(values(&f.load("wt", DType::F32, &Device::Cpu).unwrap()), [1.0, 3.0, 2.0, 4.0]);
    assert_eq!(values(&f.load("b", DType::F32, &Device::Cpu).unwrap()), [0.5, 1.0, -3.0]);
    // Cut short, a record that claims more than the file, big-endian, a key no tensor reads.
    let full = legacy(&sd, &["10", "9"], &records, true);
    refused(&full[..full.len() - 1], ErrorCode::CorruptFile, "runs past the end");
    refused(&legacy(&sd, &["10", "9"], &[(4, f32s(&[1.0, 2.0, 3.0, 4.0])), (1 << 61, vec![])], true), ErrorCode::CorruptFile, "runs past");
    refused(&legacy(&sd, &["10", "9"], &records, false), ErrorCode::Unsupported, "big-endian");
    refused(&legacy(&sd, &["10", "9", "x"], &records, true), ErrorCode::CorruptFile, "read by no tensor");
    refused(&legacy(&sd, &["10"], &records[..1], true), ErrorCode::CorruptFile, "lacks");
}
