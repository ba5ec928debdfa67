//! Cases of PyTorch zip-pickle checkpoints (`pytorch_model.bin`): the seed is the committed
//! torch-written `__test__/fixtures/pickle/gpt2-bin` (the tiny GPT-2 converted), standing in
//! for model.safetensors. Mutations of its pickle (bytes, forbidden globals and opcodes at
//! opcode boundaries, tensor views re-emitted with other shapes, strides, offsets, dtypes or
//! storages), of its zip container (header bytes, truncation, compression method) and of its
//! data (NaN), plus the sharded, strided-f16, legacy-format and hostile fixtures. Expectations are the
//! mutations' own tags (the safetensors weight oracle does not read these files).

use std::path::PathBuf;

use tl_engine::load::pickle::{self, StorageDtype, TensorRef};
use tl_engine::load::torch_write::{state_dict_pickle, Pickler};
use tl_engine::load::zip::{build_stored, Archive};

use super::cases::{finalize, Base};
use super::rng::Rng;
use super::{corpus_dir, Applied, Case, Expect, Folder};

pub const BIN: &str = "pytorch_model.bin";

pub fn pickle_dir(name: &str) -> PathBuf {
    super::hub_dir().join("../pickle").join(name)
}

/// The torch-written seed: its bytes, its entries, and its state dict as the reader sees it.
pub struct BinSeed {
    pub bytes: Vec<u8>,
    entries: Vec<(String, Vec<u8>)>,
    pkl_name: String,
    pub pkl: Vec<u8>,
    pub tensors: Vec<(String, TensorRef)>,
}

impl BinSeed {
    pub fn load() -> BinSeed {
        let bytes = std::fs::read(pickle_dir("gpt2-bin").join(BIN)).expect("the gpt2-bin fixture (make_pickle_fixtures.py)");
        let a = Archive::parse(&bytes, "seed").expect("the seed archive is valid");
        let entries: Vec<(String, Vec<u8>)> = a.entries().iter().map(|e| (e.name.clone(), a.data(&bytes, e).to_vec())).collect();
        let (pkl_name, pkl) = entries.iter().find(|(n, _)| n.ends_with("/data.pkl")).cloned().expect("data.pkl");
        let tensors = pickle::state_dict(pickle::load(&pkl, "seed").unwrap(), "seed").unwrap();
        BinSeed { bytes, entries, pkl_name, pkl, tensors }
    }

    /// The archive again (stored, without torch's alignment) with `pkl` as its pickle.
    pub fn with_pickle(&self, pkl: &[u8]) -> Vec<u8> {
        let refs: Vec<(&str, &[u8])> =
            self.entries.iter().map(|(n, b)| (n.as_str(), if *n == self.pkl_name { pkl } else { b.as_slice() })).collect();
        build_stored(&refs, false)
    }

    /// The state dict re-emitted after `edit`.
    fn with_tensors(&self, edit: impl FnOnce(&mut Vec<(String, TensorRef)>)) -> Vec<u8> {
        let mut t = self.tensors.clone();
        edit(&mut t);
        self.with_pickle(&state_dict_pickle(&t))
    }

    /// The file offsets of the data entries' bytes (start, len), storages only.
    fn storage_spans(&self, bytes: &[u8]) -> Vec<(u64, u64)> {
        let a = Archive::parse(bytes, "seed").unwrap();
        a.entries().iter().filter(|e| e.name.contains("/data/")).map(|e| (e.start, e.size)).collect()
    }
}

/// Offsets where an opcode starts, up to and including STOP (for the opcodes torch writes).
pub fn boundaries(p: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    let u32_at = |i: usize| p.get(i..i + 4).map_or(usize::MAX / 2, |b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    while at < p.len() {
        out.push(at);
        let op = p[at];
        let arg = match op {
            b'.' => break,
            0x80 | b'q' | b'h' | b'K' => 1,
            b'M' => 2,
            b'J' | b'r' | b'j' => 4,
            b'G' | 0x95 => 8,
            b'X' | b'B' => 4 + u32_at(at + 1),
            0x8c | b'C' | 0x8a => 1 + *p.get(at + 1).unwrap_or(&0) as usize,
            b'c' => {
                let nl = |from: usize| p[from..].iter().position(|&b| b == b'\n').map_or(p.len(), |i| from + i + 1);
                nl(nl(at + 1)) - at - 1
            }
            _ => 0,
        };
        at += 1 + arg;
    }
    out
}

fn bin_case(base: &Base, name: String, bytes: Vec<u8>, class: &str, desc: String, e: Expect) -> Case {
    let mut f: Folder = base.folder.clone();
    f.files.remove("model.safetensors");
    f.set(BIN, bytes);
    finalize(base, name, f, vec![Applied::new(class, desc, Some(e))])
}

const FORBIDDEN: &[(&str, &str)] = &[("posix", "system"), ("builtins", "eval"), ("torch", "load"), ("__builtin__", "getattr"), ("torch._utils", "_rebuild_qtensor")];
const BAD_OPS: &[u8] = &[b'i', b'o', 0x81, 0x92, 0x82, b'P', b'2', b'0', b'1', b'S', b'l', b'd', 0x90, 0xff];

/// One random mutation of the seed: (class, description, expectation, file).
fn mutate(rng: &mut Rng, s: &BinSeed) -> (String, String, Expect, Vec<u8>) {
    use Expect::{Either, MustLoad, MustRefuse};
    let n = s.tensors.len();
    let pick = rng.below(n);
    let tname = s.tensors[pick].0.clone();
    match rng.weighted(&[15, 12, 8, 10, 8, 8, 10, 6, 6, 6, 6, 5]) {
        0 => {
            let mut p = s.pkl.clone();
            let k = rng.range(1, 4);
            for _ in 0..k {
                let at = rng.below(p.len());
                p[at] = rng.next_u64() as u8;
            }
            ("bin.pkl bytes".into(), format!("data.pkl: {k} random bytes"), Either, s.with_pickle(&p))
        }
        1 => {
            let b = boundaries(&s.pkl);
            let at = *rng.pick(&b);
            let (m, g) = *rng.pick(FORBIDDEN);
            let mut p = s.pkl.clone();
            p.splice(at..at, format!("c{m}\n{g}\n").into_bytes());
            ("bin.pkl forbidden global".into(), format!("data.pkl: GLOBAL {m}.{g} at {at}"), MustRefuse, s.with_pickle(&p))
        }
        2 => {
            let b = boundaries(&s.pkl);
            let at = *rng.pick(&b);
            let op = *rng.pick(BAD_OPS);
            let mut p = s.pkl.clone();
            p.insert(at, op);
            ("bin.pkl bad opcode".into(), format!("data.pkl: opcode 0x{op:02x} at {at}"), MustRefuse, s.with_pickle(&p))
        }
        3 => {
            let sq: Vec<usize> = (0..n).filter(|&i| matches!(s.tensors[i].1.shape.as_slice(), [a, b] if a == b)).collect();
            let i = *rng.pick(&sq);
            let name = s.tensors[i].0.clone();
            let file = s.with_tensors(|t| t[i].1.stride.reverse());
            ("bin.view transposed".into(), format!("{name} read as its transpose (strides reversed)"), MustLoad, file)
        }
        4 => {
            let file = s.with_tensors(|t| t[pick].1.offset += 1 + rng.below(3) as u64);
            ("bin.view offset".into(), format!("{tname}: storage offset past the storage"), MustRefuse, file)
        }
        5 => {
            let file = s.with_tensors(|t| {
                let sh = &mut t[pick].1.shape;
                let d = rng.below(sh.len().max(1)).min(sh.len().saturating_sub(1));
                if let Some(x) = sh.get_mut(d) {
                    *x += 1;
                }
            });
            ("bin.view shape+1".into(), format!("{tname}: one dimension + 1"), MustRefuse, file)
        }
        6 => {
            // Not BF16: f32 bytes read as bfloat16 are finite up to 1e38, a checkpoint that
            // loads and overflows the forward (as such a safetensors file would).
            let (dt, e) = *rng.pick(&[(StorageDtype::F16, Either), (StorageDtype::F64, MustRefuse), (StorageDtype::I64, MustRefuse), (StorageDtype::U8, MustRefuse), (StorageDtype::Bool, MustRefuse)]);
            let file = s.with_tensors(|t| {
                let key = t[pick].1.key.clone();
                for (_, x) in t.iter_mut().filter(|(_, x)| x.key == key) {
                    x.dtype = dt;
                }
            });
            ("bin.storage dtype".into(), format!("{tname}'s storage read as {dt:?}"), e, file)
        }
        7 => {
            let optional = tname == "lm_head.weight";
            let file = s.with_tensors(|t| {
                t.remove(pick);
            });
            ("bin.tensor dropped".into(), format!("{tname} left out"), if optional { MustLoad } else { MustRefuse }, file)
        }
        8 => {
            let file = s.with_tensors(|t| t[pick].1.key = "missing".into());
            ("bin.storage missing".into(), format!("{tname} reads a storage the archive lacks"), MustRefuse, file)
        }
        9 => {
            let mut b = s.bytes.clone();
            let spans = s.storage_spans(&b);
            let (start, len) = *rng.pick(&spans);
            let at = (start + 4 * rng.below((len / 4) as usize) as u64) as usize;
            let bad = *rng.pick(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
            b[at..at + 4].copy_from_slice(&bad.to_le_bytes());
            ("bin.data non-finite".into(), format!("a storage value at byte {at} set to {bad}"), MustRefuse, b)
        }
        10 => {
            let mut b = s.bytes.clone();
            let cut = rng.range(1, b.len());
            b.truncate(b.len() - cut);
            ("bin.truncate".into(), format!("the last {cut} bytes cut"), MustRefuse, b)
        }
        _ => {
            let mut b = s.bytes.clone();
            let spans = s.storage_spans(&b);
            let in_data = |i: u64| spans.iter().any(|&(st, l)| i >= st && i < st + l);
            let mut at = rng.below(b.len());
            for _ in 0..64 {
                if !in_data(at as u64) {
                    break;
                }
                at = rng.below(b.len());
            }
            b[at] ^= 1 << rng.below(8);
            ("bin.zip header bit".into(), format!("bit flipped at byte {at} (outside the storages)"), Either, b)
        }
    }
}

/// Random cases, deterministic per seed.
pub fn random(base: &Base, seed: u64, n: usize) -> Vec<Case> {
    let s = BinSeed::load();
    (0..n)
        .map(|i| {
            let mut rng = Rng::for_case(seed ^ 0xb1_0b1b, i as u64);
            let (class, desc, e, file) = mutate(&mut rng, &s);
            let mut c = bin_case(base, format!("bin-{i:04}"), file, &class, desc, e);
            c.processing = !rng.chance(0.25);
            c
        })
        .collect()
}

fn copy_in(f: &mut Folder, dir: &str, names: &[&str]) {
    for n in names {
        f.set(n, std::fs::read(pickle_dir(dir).join(n)).unwrap_or_else(|e| panic!("{dir}/{n}: {e}")));
    }
}

/// The torch-written fixtures and container damage that must each end one way.
pub fn fixed(base: &Base) -> Vec<Case> {
    use Expect::{MustLoad, MustRefuse};
    let s = BinSeed::load();
    let mut v = vec![
        bin_case(base, "bin-seed".into(), s.bytes.clone(), "bin.seed", "torch-written pytorch_model.bin".into(), MustLoad),
        bin_case(base, "bin-rebuilt".into(), s.with_pickle(&s.pkl), "bin.rebuilt", "the seed's entries re-zipped without alignment".into(), MustLoad),
    ];
    let mut method = s.bytes.clone();
    let cd = method.windows(4).position(|w| w == [0x50, 0x4b, 0x01, 0x02]).unwrap();
    method[cd + 10] = 8;
    v.push(bin_case(base, "bin-deflate".into(), method, "bin.zip method", "first entry marked deflated".into(), MustRefuse));
    let shards = ["config.json", "pytorch_model.bin.index.json", "pytorch_model-00001-of-00003.bin", "pytorch_model-00002-of-00003.bin", "pytorch_model-00003-of-00003.bin"];
    for (tag, keep, e) in [("all", 5, MustLoad), ("one-missing", 4, MustRefuse)] {
        let mut f = base.folder.clone();
        f.files.remove("model.safetensors");
        copy_in(&mut f, "gpt2-bin-sharded", &shards[..keep]);
        v.push(finalize(base, format!("bin-sharded-{tag}"), f, vec![Applied::new(format!("bin.sharded {tag}"), format!("sharded .bin, {keep} of 5 files"), Some(e))]));
    }
    for (dir, what) in [("gpt2-bin-strided-f16", "float16, column-major, offset views"), ("gpt2-bin-legacy-f16", "float16, torch's legacy format")] {
        let mut f = base.folder.clone();
        f.files.remove("model.safetensors");
        copy_in(&mut f, dir, &[BIN]);
        v.push(finalize(base, format!("bin-{dir}"), f.clone(), vec![Applied::new(format!("bin.{dir}"), what, Some(MustLoad))]));
        let mut b = f.bytes(BIN).unwrap().clone();
        b.truncate(b.len() - 3);
        f.set(BIN, b);
        v.push(finalize(base, format!("bin-{dir}-truncated"), f, vec![Applied::new(format!("bin.{dir} truncated"), format!("{what}, last 3 bytes cut"), Some(MustRefuse))]));
    }
    for h in ["posix_system.bin", "unknown_opcode.bin"] {
        let bytes = std::fs::read(pickle_dir("hostile").join(h)).unwrap();
        v.push(bin_case(base, format!("bin-hostile-{h}"), bytes, "bin.hostile", format!("hostile/{h}"), MustRefuse));
    }
    // A pickle that nests past the limit and one that doubles memo copies (billion laughs).
    let mut deep = Pickler::new();
    deep.op(b"N").op(&[0x85; 200]).op(b".");
    let mut laughs = vec![0x80, 2, b'(', b'K', 1, b'K', 2, b't', b'q', 0];
    for i in 0..60u8 {
        laughs.extend([b'h', i, b'h', i, 0x86, b'q', i + 1]);
    }
    laughs.push(b'.');
    for (tag, p) in [("deep", deep.out), ("laughs", laughs)] {
        v.push(bin_case(base, format!("bin-pkl-{tag}"), s.with_pickle(&p), "bin.pkl bomb", format!("data.pkl: {tag}"), MustRefuse));
    }
    v
}

/// The cargo-fuzz `pickle` corpus: each input as the seed archive's data.pkl.
pub fn corpus(base: &Base) -> Vec<Case> {
    let Ok(rd) = std::fs::read_dir(corpus_dir("pickle")) else { return vec![] };
    let s = BinSeed::load();
    let mut paths: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let stem = p.file_name().unwrap().to_string_lossy().to_string();
            let file = s.with_pickle(&std::fs::read(&p).unwrap());
            bin_case(base, format!("corpus-pickle-{stem}"), file, "corpus.pickle", format!("data.pkl from fuzz/corpus/pickle/{stem}"), Expect::Either)
        })
        .collect()
}
