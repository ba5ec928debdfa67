use super::*;
use crate::error::ErrorCode;
use crate::load::torch_write::{contiguous, state_dict_pickle, Pickler};

fn refused(data: &[u8], needle: &str) {
    let e = load(data, "t.pkl").expect_err("must be refused");
    assert_eq!(e.code, ErrorCode::CorruptFile, "{}", e.message);
    assert!(e.message.contains(needle), "{:?} does not mention {needle:?}", e.message);
}

fn two_tensors() -> Vec<(String, TensorRef)> {
    vec![("a.weight".into(), contiguous("0", StorageDtype::F32, &[3, 4])), ("a.bias".into(), contiguous("1", StorageDtype::F16, &[4]))]
}

#[test]
fn reads_a_state_dict() {
    let sd = two_tensors();
    let got = state_dict(load(&state_dict_pickle(&sd), "t").unwrap(), "t").unwrap();
    assert_eq!(got, sd);
    assert!(got[0].1.is_contiguous() && got[0].1.numel() == 12);
}

/// The opcodes torch writes that the writer does not: memo, BUILD of the OrderedDict's
/// `_metadata`, `_rebuild_parameter`, frames, STACK_GLOBAL, LONG1, BININT.
#[test]
fn reads_torch_idioms() {
    let t = contiguous("7", StorageDtype::BF16, &[2, 3]);
    let mut p = Pickler::new();
    p.op(&[0x80, 4, 0x95]).op(&0u64.to_le_bytes()); // PROTO 4 then an empty FRAME
    p.op(&[0x8c, 11]).op(b"collections").op(&[0x94, 0x8c, 11]).op(b"OrderedDict").op(&[0x94, 0x93, 0x94]);
    p.op(b")R").op(&[0x94]).op(b"(").str("p");
    p.global("torch._utils", "_rebuild_parameter").op(b"(").tensor(&t).op(&[0x88]).op(b"h\x02)R").op(b"tR").op(&[b'q', 200]);
    p.str("q").op(&[b'h', 200]); // the same tensor again, from the memo
    p.op(b"u}").str("_metadata").op(b"h\x02)Rs").op(b"b"); // BUILD with a state dict
    p.op(b".");
    let v = load(&p.out, "t").unwrap();
    let sd = state_dict(v, "t").unwrap();
    assert_eq!(sd.len(), 2);
    assert_eq!(sd[0].1, t);
    assert_eq!(sd[1], ("q".to_string(), t));
}

#[test]
fn ints_floats_strings() {
    let mut p = Pickler::new();
    p.op(b"(J").op(&(-5i32).to_le_bytes()).op(&[0x8a, 2, 0x00, 0x80]).op(&[0x8a, 0]).op(b"G").op(&1.5f64.to_be_bytes());
    p.op(&[b'N', 0x88, b'C', 2, b'h', b'i', 0x8d]).op(&2u64.to_le_bytes()).op(b"ok").op(b"t.");
    let Value::Tuple(v, _) = load(&p.out, "t").unwrap() else { panic!() };
    assert_eq!(
        v,
        vec![Value::Int(-5), Value::Int(-32768), Value::Int(0), Value::Float(1.5), Value::None, Value::Bool(true), Value::Bytes(b"hi".to_vec()), Value::Str("ok".into())]
    );
}

#[test]
fn duplicate_keys_keep_first_place_last_value() {
    let (a, b) = (contiguous("0", StorageDtype::F32, &[1]), contiguous("1", StorageDtype::F32, &[2]));
    let sd = vec![("x".to_string(), a.clone()), ("y".to_string(), a.clone()), ("x".to_string(), b.clone())];
    let got = state_dict(load(&state_dict_pickle(&sd), "t").unwrap(), "t").unwrap();
    assert_eq!(got, vec![("x".to_string(), b), ("y".to_string(), a)]);
}

#[test]
fn refuses_other_globals() {
    for (m, n) in [("posix", "system"), ("os", "system"), ("builtins", "eval"), ("torch", "load"), ("torch._utils", "_rebuild_qtensor"), ("torch", "UntypedStorage")] {
        let mut p = Pickler::new();
        p.global(m, n).op(b"(").str("echo pwned").op(b"tR.");
        refused(&p.out, &format!("`{m}.{n}`"));
        let mut p = Pickler::new();
        p.str(m).str(n).op(&[0x93]).op(b")R.");
        refused(&p.out, &format!("`{m}.{n}`"));
    }
}

#[test]
fn refuses_other_opcodes() {
    // INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4, PERSID, BINSTRING, STRING, INT, LONG4, DUP, POP,
    // POP_MARK, LIST, DICT, FROZENSET, BYTEARRAY8, NEXT_BUFFER, READONLY_BUFFER, unknown.
    for op in [b'i', b'o', 0x81, 0x92, 0x82, 0x83, 0x84, b'P', b'T', b'S', b'I', 0x8b, b'2', b'0', b'1', b'l', b'd', 0x90, 0x91, 0x96, 0x97, 0x98, 0x8e, b'F', b'L', b'V', b'g', b'p', b'U', 0xff, 0x00] {
        let mut p = Pickler::new();
        p.op(b"(").op(&[op]).op(b"xx\n\n.");
        refused(&p.out, &format!("opcode 0x{op:02x}"));
    }
}

#[test]
fn refuses_calls_outside_the_allowlist() {
    let mut p = Pickler::new();
    p.global("torch", "FloatStorage").op(b")R.");
    refused(&p.out, "called with");
    let mut p = Pickler::new();
    p.global("collections", "OrderedDict").op(b"(").str("x").op(b"tR.");
    refused(&p.out, "called with");
    let mut p = Pickler::new();
    p.str("f").op(b")R.");
    refused(&p.out, "REDUCE calls a str");
    let mut p = Pickler::new();
    p.op(b"(").str("not-storage").global("torch", "FloatStorage").str("0").str("cpu").int(4).op(b"tQ.");
    refused(&p.out, "not a torch storage");
    let mut p = Pickler::new();
    p.op(b"N").op(b"(tb.");
    refused(&p.out, "BUILD on a None");
}

#[test]
fn refuses_tensors_outside_their_storage() {
    let cases: Vec<(TensorRef, &str)> = vec![
        (TensorRef { storage_len: 11, ..contiguous("0", StorageDtype::F32, &[3, 4]) }, "does not fit"),
        (TensorRef { offset: 1, ..contiguous("0", StorageDtype::F32, &[3, 4]) }, "does not fit"),
        (TensorRef { stride: vec![4, 2], ..contiguous("0", StorageDtype::F32, &[3, 4]) }, "does not fit"),
        (TensorRef { stride: vec![1], ..contiguous("0", StorageDtype::F32, &[3, 4]) }, "differ in length"),
        (TensorRef { shape: vec![1 << 62, 1 << 62], ..contiguous("0", StorageDtype::F32, &[3, 4]) }, "does not fit"),
    ];
    for (t, needle) in cases {
        refused(&state_dict_pickle(&[("w".into(), t)]), needle);
    }
    // Empty tensors fit anywhere; a transposed view of a square matrix fits.
    for t in [TensorRef { shape: vec![0, 1 << 40], ..contiguous("0", StorageDtype::F32, &[3, 4]) }, TensorRef { stride: vec![1, 3], ..contiguous("0", StorageDtype::F32, &[3, 3]) }] {
        let sd = state_dict(load(&state_dict_pickle(&[("w".into(), t.clone())]), "t").unwrap(), "t").unwrap();
        assert_eq!(sd[0].1, t);
    }
    // A negative offset or dimension.
    let mut p = Pickler::new();
    p.global("torch._utils", "_rebuild_tensor_v2").op(b"((").str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(4);
    p.op(b"tQJ").op(&(-1i32).to_le_bytes()).ints(&[4]).ints(&[1]).op(&[0x89]).op(b"}tR.");
    refused(&p.out, "storage offset is -1");
}

#[test]
fn refuses_malformed_input() {
    refused(b"", "without STOP");
    refused(&[0x80, 2, b'N'], "without STOP");
    refused(&[0x80, 1, b'N', b'.'], "protocol 1");
    refused(&[0x80, 6, b'N', b'.'], "protocol 6");
    refused(&[0x80, 2, b'.'], "underflow");
    refused(&[0x80, 2, 0x86, b'.'], "underflow");
    refused(&[0x80, 2, b'N', b'(', 0x85, b'.'], "underflow"); // pops below the MARK
    refused(&[0x80, 2, b't', b'.'], "no MARK");
    refused(&[0x80, 2, b'X', 0xff, 0xff, 0xff, 0xff, b'.'], "are left");
    let mut huge = vec![0x80, 2, 0x8d];
    huge.extend(u64::MAX.to_le_bytes());
    refused(&huge, "are left");
    refused(&[0x80, 2, b'X', 2, 0, 0, 0, 0xc3, 0x28, b'.'], "UTF-8");
    refused(&[0x80, 2, 0x8a, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, b'.'], "more than 64 bits");
    refused(&[0x80, 2, b'h', 3, b'.'], "never stored");
    refused(&[0x80, 2, b'N', b'N', b'a', b'.'], "APPEND onto a None");
    refused(&[0x80, 2, b'}', b'(', b'N', b'u', b'.'], "odd number");
    refused(&[0x80, 2, 0x95, 0xff, 0, 0, 0, 0, 0, 0, 0, b'.'], "frame");
    let long_line = format!("c{}\nx\n.", "m".repeat(300));
    refused(&[&[0x80, 2][..], long_line.as_bytes()].concat(), "too long");
}

#[test]
fn bounds_nesting_and_memo_copies() {
    let mut deep = vec![0x80, 2, b'N'];
    deep.extend(std::iter::repeat_n(0x85, 100));
    deep.push(b'.');
    refused(&deep, "nest deeper");
    let mut lists = vec![0x80, 2];
    lists.extend(std::iter::repeat_n(b']', 100));
    lists.extend(std::iter::repeat_n(b'a', 99));
    lists.push(b'.');
    refused(&lists, "nest deeper");
    // Billion laughs: each level puts and gets the previous one twice.
    let mut p = vec![0x80, 2, b'(', b'K', 1, b'K', 2, b't', b'q', 0];
    for i in 0..40u8 {
        p.extend([b'h', i, b'h', i, 0x86, b'q', i + 1]);
    }
    p.push(b'.');
    refused(&p, "copied more");
}

#[test]
fn random_damage_never_panics() {
    let good = state_dict_pickle(&two_tensors());
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..20000 {
        let mut m = good.clone();
        for _ in 0..1 + (s % 3) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let at = (s as usize) % m.len();
            match s >> 60 {
                0..=9 => m[at] = (s >> 32) as u8,
                10..=12 => {
                    m.remove(at);
                }
                _ => m.insert(at, (s >> 40) as u8),
            }
        }
        if let Ok(v) = load(&m, "t") {
            let _ = state_dict(v, "t");
        }
    }
}
