//! Case generation: random mutation stacks (deterministic per seed and index), the handwritten
//! regression cases, and replays of the cargo-fuzz seed corpus. Every case's expectation is
//! its mutations' own tags combined with the config and weight oracles' verdicts.

use serde_json::{json, Value};

use super::rng::Rng;
use super::st::{self, StFile};
use super::{cfg, corpus_dir, layout, seed_folder, st_mut, tok, Applied, Case, Expect, Folder};

/// The seed and what the oracles compare against.
pub struct Base {
    pub folder: Folder,
    pub config: Value,
    pub reference: st::Reference,
}

impl Base {
    pub fn load() -> Base {
        let folder = seed_folder();
        let config = serde_json::from_slice(folder.bytes("config.json").unwrap()).expect("seed config.json");
        let reference = st::Reference::from_seed(folder.bytes("model.safetensors").unwrap());
        Base { folder, config, reference }
    }
}

/// The case's expectation: explicit tags, then the oracles on the files as they ended up.
pub fn finalize(base: &Base, name: String, folder: Folder, applied: Vec<Applied>) -> Case {
    let mut expect = Expect::MustLoad;
    let mut why = Vec::new();
    for a in &applied {
        if let Some(e) = a.expect {
            expect = expect.and(e);
        }
    }
    let mut n_layers = 3;
    if let Some(b) = folder.content("config.json") {
        let v = cfg::oracle(b, &base.config);
        expect = expect.and(v.expect);
        n_layers = v.n_layers;
        why.extend(v.why);
    }
    if let Some(b) = folder.sharded_from.as_ref().or_else(|| folder.content("model.safetensors")) {
        let (e, w) = st::oracle(b, &base.reference, n_layers);
        expect = expect.and(e);
        why.extend(w);
    }
    Case { name, folder, applied, expect, why, processing: true }
}

type StMut = fn(&mut Rng, &mut StFile) -> Option<Applied>;

fn pick_st(rng: &mut Rng, data: bool) -> StMut {
    let list: Vec<_> = st_mut::STRUCTURED.iter().filter(|(n, _, _)| data == matches!(*n, "non-finite" | "noise")).collect();
    let w: Vec<u32> = list.iter().map(|m| m.2).collect();
    list[rng.weighted(&w)].1
}

/// Applies `m` to a copy of the file and keeps it only when the mutation applied.
fn on_file(f: &mut Folder, name: &str, m: impl FnOnce(&mut Vec<u8>) -> Option<Applied>) -> Option<Applied> {
    let mut b = f.bytes(name)?.clone();
    let a = m(&mut b)?;
    f.set(name, b);
    Some(a)
}

fn on_st(f: &mut Folder, m: impl FnOnce(&mut StFile) -> Option<Applied>) -> Option<Applied> {
    on_file(f, "model.safetensors", |b| {
        let mut s = StFile::parse(b).ok()?;
        let a = m(&mut s)?;
        *b = s.serialize();
        Some(a)
    })
}

const ST_HEADER: usize = 0;
const ST_DATA: usize = 1;
const CONFIG: usize = 2;
const TOKENIZER: usize = 3;
const LAYOUT: usize = 4;
const FAMILY_WEIGHTS: [u32; 5] = [25, 20, 20, 20, 15];

fn apply_family(rng: &mut Rng, f: &mut Folder, fam: usize, touched: &mut Vec<&'static str>) -> Option<Applied> {
    match fam {
        ST_HEADER => {
            touched.push("model.safetensors");
            match rng.weighted(&[70, 20, 10]) {
                0 => {
                    let m = pick_st(rng, false);
                    on_st(f, |s| m(rng, s))
                }
                1 => on_file(f, "model.safetensors", |b| st_mut::raw(rng, b)),
                _ => on_file(f, "model.safetensors", |b| st_mut::header_byte(rng, b)),
            }
        }
        ST_DATA => {
            touched.push("model.safetensors");
            let m = pick_st(rng, true);
            on_st(f, |s| m(rng, s))
        }
        CONFIG => {
            touched.push("config.json");
            let w: Vec<u32> = cfg::MUTATORS.iter().map(|m| m.2).collect();
            let m = cfg::MUTATORS[rng.weighted(&w)].1;
            on_file(f, "config.json", |b| m(rng, b))
        }
        TOKENIZER => {
            if rng.chance(0.15) {
                let name = *rng.pick(&["tokenizer_config.json", "special_tokens_map.json"]);
                touched.push(name);
                return on_file(f, name, |b| tok::special_config(rng, b, name));
            }
            touched.push("tokenizer.json");
            let w: Vec<u32> = tok::MUTATORS.iter().map(|m| m.2).collect();
            let m = tok::MUTATORS[rng.weighted(&w)].1;
            on_file(f, "tokenizer.json", |b| m(rng, b))
        }
        _ => layout::mutate(rng, f, touched),
    }
}

/// Random case `i` of the run seeded with `seed`: 1 to 3 mutations, layout ones last.
pub fn random_case(base: &Base, seed: u64, i: usize) -> Case {
    let mut rng = Rng::for_case(seed, i as u64);
    let mut f = base.folder.clone();
    let k = [1, 1, 1, 1, 1, 1, 2, 2, 2, 3][rng.below(10)];
    let mut fams: Vec<usize> = (0..k).map(|_| rng.weighted(&FAMILY_WEIGHTS)).collect();
    fams.sort_by_key(|&x| x == LAYOUT);
    if let Some(p) = fams.iter().position(|&x| x == LAYOUT) {
        fams.truncate(p + 1);
    }
    let mut applied = Vec::new();
    let mut touched = Vec::new();
    for fam in fams {
        for _ in 0..8 {
            if let Some(a) = apply_family(&mut rng, &mut f, fam, &mut touched) {
                applied.push(a);
                break;
            }
        }
    }
    let mut c = finalize(base, format!("rand-{i:04}"), f, applied);
    c.processing = !rng.chance(0.25);
    c
}

pub fn random(base: &Base, seed: u64, n: usize) -> Vec<Case> {
    (0..n).map(|i| random_case(base, seed, i)).collect()
}

fn case(base: &Base, name: &str, class: &str, desc: &str, expect: Expect, edit: impl FnOnce(&mut Folder)) -> Case {
    let mut f = base.folder.clone();
    edit(&mut f);
    let applied = if class.is_empty() { vec![] } else { vec![Applied::new(class, desc, Some(expect))] };
    finalize(base, format!("reg-{name}"), f, applied)
}

fn set_cfg(f: &mut Folder, key: &str, v: Value) {
    let mut c: Value = serde_json::from_slice(f.bytes("config.json").unwrap()).unwrap();
    c[key] = v;
    f.set("config.json", serde_json::to_vec_pretty(&c).unwrap());
}

fn set_tok(f: &mut Folder, key: &str, v: Value) {
    let mut t: Value = serde_json::from_slice(f.bytes("tokenizer.json").unwrap()).unwrap();
    t[key] = v;
    f.set("tokenizer.json", serde_json::to_vec_pretty(&t).unwrap());
}

fn edit_st(f: &mut Folder, edit: impl FnOnce(&mut StFile)) {
    let mut s = StFile::parse(f.bytes("model.safetensors").unwrap()).unwrap();
    edit(&mut s);
    f.set("model.safetensors", s.serialize());
}

/// Gives tensor `name` a new shape, its data cut or padded (with 0.01) to match.
fn reshape(s: &mut StFile, name: &str, shape: &[u64]) {
    let i = s.find(name).unwrap_or_else(|| panic!("no tensor {name}"));
    let e = &mut s.entries[i];
    let n: u64 = shape.iter().product();
    let mut vals = st::floats(e).unwrap();
    vals.resize(n as usize, 0.01);
    e.data = st::encode(&vals, &e.dtype);
    e.shape = shape.to_vec();
}

fn set_value(s: &mut StFile, name: &str, flat: usize, x: f64) {
    let i = s.find(name).unwrap();
    let e = &mut s.entries[i];
    let mut vals = st::floats(e).unwrap();
    vals[flat] = x;
    e.data = st::encode(&vals, &e.dtype);
}

fn reencode_all(s: &mut StFile, dtype: &str) {
    for e in &mut s.entries {
        e.data = st::encode(&st::floats(e).unwrap(), dtype);
        e.dtype = dtype.into();
    }
}

/// The handwritten cases: the known bugs and the valid variants next to them.
pub fn regressions(base: &Base) -> Vec<Case> {
    use Expect::{Either, MustLoad, MustRefuse};
    let h = "transformer.h.0.";
    let mut v = vec![case(base, "seed-unmodified", "", "", MustLoad, |_| {})];
    let cfgs: &[(&str, &str, Value, Expect)] = &[
        ("n_head-0", "n_head", json!(0), MustRefuse),
        ("n_head-3", "n_head", json!(3), MustRefuse),
        ("n_head-1", "n_head", json!(1), MustLoad),
        ("n_layer-0", "n_layer", json!(0), MustRefuse),
        ("n_layer-2^40", "n_layer", json!(1u64 << 40), MustRefuse),
        ("n_layer-10^18", "n_layer", json!(1_000_000_000_000_000_000u64), MustRefuse),
        ("n_layer-1e18-float", "n_layer", json!(1e18), MustRefuse),
        ("eps-negative", "layer_norm_epsilon", json!(-1e-5), MustRefuse),
        ("eps-minus-1", "layer_norm_epsilon", json!(-1), MustRefuse),
        ("eps-string", "layer_norm_epsilon", json!("1e-5"), MustRefuse),
        ("n_inner-64", "n_inner", json!(64), MustRefuse),
        ("n_inner-128", "n_inner", json!(128), MustLoad),
        ("n_embd-2^40", "n_embd", json!(1u64 << 40), MustRefuse),
        ("vocab-1e300", "vocab_size", json!(1e300), MustRefuse),
        ("n_ctx-0", "n_ctx", json!(0), MustRefuse),
        ("n_ctx-string", "n_ctx", json!("64"), MustRefuse),
    ];
    for (name, key, val, e) in cfgs {
        let d = format!("config.json: {key} = {val}");
        v.push(case(base, &format!("cfg-{name}"), &format!("cfg.{key}={val}"), &d, *e, |f| set_cfg(f, key, val.clone())));
    }
    let shapes: &[(&str, &str, &[u64])] = &[
        ("mlp.c_proj.bias-[1]", "mlp.c_proj.bias", &[1]),
        ("attn.c_proj.weight-[32,1]", "attn.c_proj.weight", &[32, 1]),
        ("attn.c_attn.bias-[1]", "attn.c_attn.bias", &[1]),
        ("mlp.c_fc.bias-[1]", "mlp.c_fc.bias", &[1]),
        ("mlp.c_proj.weight-[128,1]", "mlp.c_proj.weight", &[128, 1]),
        ("attn.c_proj.bias-scalar", "attn.c_proj.bias", &[]),
        ("attn.c_proj.weight-[1,32]", "attn.c_proj.weight", &[1, 32]),
    ];
    for processing in [true, false] {
        for (name, t, shape) in shapes {
            let d = format!("model.safetensors: {h}{t} reshaped to {shape:?} (data resized)");
            let tag = if processing { "" } else { "-noproc" };
            let mut c = case(base, &format!("st-{name}{tag}"), &format!("st.shape h.*.{t} ->{shape:?}"), &d, MustRefuse, |f| {
                edit_st(f, |s| reshape(s, &format!("{h}{t}"), shape))
            });
            c.processing = processing;
            v.push(c);
        }
    }
    let values: &[(&str, &str, usize, f64)] = &[
        ("nan-wte-unused-row", "transformer.wte.weight", 511 * 32 + 3, f64::NAN),
        ("inf-ln_f.weight", "transformer.ln_f.weight", 7, f64::INFINITY),
        ("neg-inf-wpe-row-63", "transformer.wpe.weight", 63 * 32, f64::NEG_INFINITY),
        ("nan-c_attn.bias", "transformer.h.1.attn.c_attn.bias", 40, f64::NAN),
    ];
    for (name, t, at, x) in values {
        let d = format!("model.safetensors: {t}[{at}] = {x}");
        v.push(case(base, &format!("st-{name}"), &format!("st.data {x} in {}", st::role(t)), &d, MustRefuse, |f| {
            edit_st(f, |s| set_value(s, t, *at, *x))
        }));
    }
    for dt in ["F16", "BF16", "F64"] {
        let d = format!("model.safetensors: every tensor stored as {dt}");
        v.push(case(base, &format!("st-all-{dt}"), &format!("st.reencode all ->{dt}"), &d, MustLoad, |f| edit_st(f, |s| reencode_all(s, dt))));
    }
    v.push(case(base, "st-wte-i64", "st.reencode one ->I64", "model.safetensors: wte stored as I64", MustRefuse, |f| {
        edit_st(f, |s| {
            let i = s.find("transformer.wte.weight").unwrap();
            let e = &mut s.entries[i];
            e.data = st::encode(&st::floats(e).unwrap(), "I64");
            e.dtype = "I64".into();
        })
    }));
    v.push(case(base, "st-lm_head-transposed", "st.add lm_head^T", "model.safetensors: lm_head.weight [32,512]", MustRefuse, |f| {
        edit_st(f, |s| {
            let mut e = s.entries[s.find("transformer.wte.weight").unwrap()].clone();
            e.name = "lm_head.weight".into();
            e.shape = vec![32, 512];
            s.entries.push(e);
        })
    }));
    v.push(case(base, "st-lm_head-tied-copy", "st.add lm_head", "model.safetensors: lm_head.weight = wte", MustLoad, |f| {
        edit_st(f, |s| {
            let mut e = s.entries[s.find("transformer.wte.weight").unwrap()].clone();
            e.name = "lm_head.weight".into();
            s.entries.push(e);
        })
    }));
    v.push(case(base, "st-len-prefix-max", "st.len-prefix huge", "model.safetensors: header length u64::MAX", MustRefuse, |f| {
        let mut b = f.bytes("model.safetensors").unwrap().clone();
        b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        f.set("model.safetensors", b);
    }));
    v.push(case(base, "st-truncated-by-1", "st.truncate", "model.safetensors: last byte cut", MustRefuse, |f| {
        let mut b = f.bytes("model.safetensors").unwrap().clone();
        b.pop();
        f.set("model.safetensors", b);
    }));
    v.push(case(base, "st-offsets-reversed", "st.offsets reversed", "model.safetensors: wpe offsets reversed", MustRefuse, |f| {
        edit_st(f, |s| {
            let i = s.find("transformer.wpe.weight").unwrap();
            let start: usize = s.entries[..i].iter().map(|e| e.data.len()).sum();
            s.entries[i].offsets_json = Some(format!("[{},{start}]", start + s.entries[i].data.len()));
        })
    }));
    v.push(case(base, "st-shape-2^40", "st.shape-header huge", "model.safetensors: ln_f.bias shape [2^40]", MustRefuse, |f| {
        edit_st(f, |s| {
            let i = s.find("transformer.ln_f.bias").unwrap();
            s.entries[i].shape_json = Some(format!("[{}]", 1u64 << 40));
        })
    }));
    let toks: &[(&str, &str, Value, Expect)] = &[
        ("padding-fixed-2^40", "padding", tok::padding_value(json!({"Fixed": 1u64 << 40}), Value::Null), Either),
        ("pad_to_multiple_of-2^40", "padding", tok::padding_value(json!("BatchLongest"), json!(1u64 << 40)), Either),
        ("truncation-stride-eq-max", "truncation", tok::truncation_value(4, 4), Either),
        ("truncation-stride-gt-max", "truncation", tok::truncation_value(4, 10), Either),
        ("truncation-max-0", "truncation", tok::truncation_value(0, 0), Either),
        ("template-undefined-special", "post_processor", tok::template("<s>", json!({})), MustRefuse),
        ("replace-empty-pattern", "normalizer", json!({"type": "Replace", "pattern": {"String": ""}, "content": "x"}), Either),
        ("replace-empty-regex", "normalizer", json!({"type": "Replace", "pattern": {"Regex": ""}, "content": "x"}), Either),
    ];
    for (name, key, val, e) in toks {
        let d = format!("tokenizer.json: {key} = {val}");
        v.push(case(base, &format!("tok-{name}"), &format!("tok.{key} {name}"), &d, *e, |f| set_tok(f, key, val.clone())));
    }
    let shards: &[(&str, usize, Expect)] =
        &[("valid", 0, MustLoad), ("missing", 2, MustRefuse), ("dotdot", 3, MustRefuse), ("absolute", 4, MustRefuse), ("dev-zero", 5, MustRefuse)];
    for (name, variant, e) in shards {
        let mut f = base.folder.clone();
        let a = layout::shard(&mut Rng::new(1), &mut f, Some(*variant)).expect("shard");
        let mut c = finalize(base, format!("reg-layout-shards-{name}"), f, vec![Applied { expect: Some(*e), ..a }]);
        c.expect = c.expect.and(*e);
        v.push(c);
    }
    v.push(case(base, "layout-blob-symlinks", "layout.blob-symlinks", "layout: HF cache blob symlinks", MustLoad, |f| {
        layout::blob_symlinks(f);
    }));
    let damage: &[(&str, &str, super::Node, Expect)] = &[
        ("config-dev-zero", "config.json", super::Node::Symlink("/dev/zero".into()), MustRefuse),
        ("config-fifo", "config.json", super::Node::Fifo, MustRefuse),
        ("config-sparse-1TiB", "config.json", super::Node::Sparse(1 << 40), MustRefuse),
        ("model-symlink-loop", "model.safetensors", super::Node::Symlink("model.safetensors".into()), MustRefuse),
        ("model-sparse-1TiB", "model.safetensors", super::Node::Sparse(1 << 40), MustRefuse),
        ("tokenizer-sparse-1TiB", "tokenizer.json", super::Node::Sparse(1 << 40), Either),
        ("tokenizer_config-fifo", "tokenizer_config.json", super::Node::Fifo, Either),
        ("tokenizer-dir", "tokenizer.json", super::Node::Dir, Either),
    ];
    for (name, file, node, e) in damage {
        let d = format!("layout: {file} is {node:?}");
        v.push(case(base, &format!("layout-{name}"), &format!("layout.{file} {name}"), &d, *e, |f| {
            f.files.insert(file.to_string(), node.clone());
        }));
    }
    v.push(case(base, "layout-tokenizer-missing", "layout.tokenizer.json missing", "layout: no tokenizer.json", MustLoad, |f| {
        f.files.remove("tokenizer.json");
    }));
    v
}

/// The cargo-fuzz seed corpus replayed: each file as the fuzz target would use it.
pub fn corpus(base: &Base) -> Vec<Case> {
    let mut v = Vec::new();
    for (target, file) in [("config_json", "config.json"), ("tokenizer_json", "tokenizer.json"), ("safetensors_header", "model.safetensors")] {
        let Ok(rd) = std::fs::read_dir(corpus_dir(target)) else { continue };
        let mut paths: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        paths.sort();
        for p in paths {
            let input = std::fs::read(&p).unwrap();
            let mut f = base.folder.clone();
            let bytes = if target == "safetensors_header" { st::with_header(f.bytes(file).unwrap(), &input) } else { input };
            f.set(file, bytes);
            let stem = p.file_name().unwrap().to_string_lossy().to_string();
            let expect = if target == "tokenizer_json" { Some(Expect::Either) } else { None };
            let a = Applied::new(format!("corpus.{target}"), format!("{file} from fuzz/corpus/{target}/{stem}"), expect);
            v.push(finalize(base, format!("corpus-{target}-{stem}"), f, vec![a]));
        }
    }
    v.extend(super::pickle::corpus(base));
    v
}
