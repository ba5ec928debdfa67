//! The encoder against TL's goldens (scripts/reference/bert_fixtures.py) on the fabricated
//! checkpoint in __test__/fixtures.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

use crate::bert::forward::{forward, EncoderInput, Head};
use crate::bert::load::{load_encoder, EncoderLoadOptions, LoadedEncoder};
use crate::bert::tokens::{mask_argmax, to_tokens};
use crate::model::hooks::{HookSink, Taps};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

fn fixture() -> LoadedEncoder {
    let repo = root().join("hub/models--google-bert--bert-base-cased");
    let rev = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    let o = EncoderLoadOptions { official_name: "google-bert/bert-base-cased".into(), dtype: DType::F32, device: Device::Cpu, device_label: "cpu".into() };
    load_encoder(&repo.join("snapshots").join(rev.trim()), &o).unwrap()
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(root().join("golden/google-bert__bert-base-cased/encoder.safetensors"), &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let (a, b): (Vec<f32>, Vec<f32>) = (a.flatten_all().unwrap().to_vec1().unwrap(), b.flatten_all().unwrap().to_vec1().unwrap());
    a.iter().zip(&b).map(|(x, y)| if x == y { 0.0 } else { (x - y).abs() }).fold(0.0, f32::max)
}

/// Caches every hook by name.
struct All(Vec<(usize, Tensor)>);
impl HookSink for All {
    fn wants(&self, _id: usize) -> bool {
        true
    }
    fn fire(&mut self, id: usize, t: &Tensor) -> crate::Result<Option<Tensor>> {
        self.0.push((id, t.clone()));
        Ok(None)
    }
}

#[test]
fn batch_logits_and_cache_match_tl() {
    let l = fixture();
    let g = golden();
    let tok = l.tokenizer.as_ref().unwrap();
    let texts: Vec<String> = ["The [MASK] sat on the mat", "She [MASK] to the store", "The dog [MASK] the ball and the cat ran"].map(String::from).to_vec();
    let [tokens, types, mask] = to_tokens(tok, l.pad_token_id, &texts, false, Some(64), &Device::Cpu).unwrap();
    for (name, t) in [("tokens", &tokens), ("token_type_ids", &types), ("attention_mask", &mask)] {
        let want: Vec<i64> = g[&format!("batch.{name}")].flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(t.flatten_all().unwrap().to_vec1::<i64>().unwrap(), want, "{name}");
    }
    let input = EncoderInput { tokens: &tokens, token_type_ids: Some(&types), mask: Some(&mask), abort: None };
    let mut none = crate::model::hooks::NoHooks;
    let logits = forward(&l.model, &input, Head::Mlm, &mut Taps::new(l.model.table(), &mut none)).unwrap();
    assert!(max_diff(&logits, &g["batch.logits"]) < 1e-4);
    let mut all = All(vec![]);
    let logits2 = forward(&l.model, &input, Head::Mlm, &mut Taps::new(l.model.table(), &mut all)).unwrap();
    assert!(max_diff(&logits2, &g["batch.logits"]) < 1e-4);
    let mut seen = 0;
    for (id, t) in &all.0 {
        let name = l.model.table().name(*id);
        if let Some(want) = g.get(&format!("batch.cache.{name}")) {
            let d = max_diff(t, want);
            assert!(d < 1e-4, "{name}: {d}");
            seen += 1;
        }
    }
    assert_eq!(seen, 62);
    let picks = mask_argmax(&logits, &tokens, l.mask_token_id.unwrap()).unwrap();
    assert_eq!(picks.len(), 3);
}

#[test]
fn nsp_logits_match_tl() {
    let l = fixture();
    let g = golden();
    let texts: Vec<String> = ["The quick brown fox jumps over the lazy dog.", "It was a sunny day."].map(String::from).to_vec();
    let [tokens, types, mask] = to_tokens(l.tokenizer.as_ref().unwrap(), l.pad_token_id, &texts, true, Some(64), &Device::Cpu).unwrap();
    let want: Vec<i64> = g["nsp.token_type_ids"].flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(types.flatten_all().unwrap().to_vec1::<i64>().unwrap(), want);
    let input = EncoderInput { tokens: &tokens, token_type_ids: Some(&types), mask: Some(&mask), abort: None };
    let mut none = crate::model::hooks::NoHooks;
    let nsp = forward(&l.model, &input, Head::Nsp, &mut Taps::new(l.model.table(), &mut none)).unwrap();
    assert!(max_diff(&nsp, &g["nsp.logits"]) < 1e-4);
}

#[test]
fn bad_inputs_are_errors() {
    let l = fixture();
    let tokens = Tensor::new(&[[2i64, 10, 3]], &Device::Cpu).unwrap();
    let short = Tensor::new(&[[0i64, 1]], &Device::Cpu).unwrap();
    let mut none = crate::model::hooks::NoHooks;
    for (tt, m) in [(Some(&short), None), (None, Some(&short))] {
        let input = EncoderInput { tokens: &tokens, token_type_ids: tt, mask: m, abort: None };
        let e = forward(&l.model, &input, Head::Mlm, &mut Taps::new(l.model.table(), &mut none)).unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::ShapeMismatch);
    }
    let big = Tensor::new(&[[2i64, 1000, 3]], &Device::Cpu).unwrap();
    let input = EncoderInput { tokens: &big, token_type_ids: None, mask: None, abort: None };
    assert_eq!(forward(&l.model, &input, Head::Mlm, &mut Taps::new(l.model.table(), &mut none)).unwrap_err().code, crate::ErrorCode::InvalidArgument);
}

/// `TL_BERT_BENCH_DIR=<snapshot of bench/make_checkpoint.py bert> cargo test --release -p tl-engine bert_base_timing -- --ignored --nocapture`
#[test]
#[ignore]
fn bert_base_timing() {
    let Ok(dir) = std::env::var("TL_BERT_BENCH_DIR") else { return };
    let o = EncoderLoadOptions { official_name: "google-bert/bert-base-cased".into(), dtype: DType::F32, device: Device::Cpu, device_label: "cpu".into() };
    let l = load_encoder(std::path::Path::new(&dir), &o).unwrap();
    let ids: Vec<i64> = (0..1024).map(|i| (i * 7919 % 139) as i64).collect();
    let tokens = Tensor::from_vec(ids, (8, 128), &Device::Cpu).unwrap();
    let input = EncoderInput { tokens: &tokens, token_type_ids: None, mask: None, abort: None };
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let mut none = crate::model::hooks::NoHooks;
        let _ = forward(&l.model, &input, Head::Mlm, &mut Taps::new(l.model.table(), &mut none)).unwrap();
        let plain = t.elapsed();
        let t = std::time::Instant::now();
        let mut all = All(vec![]);
        let _ = forward(&l.model, &input, Head::Mlm, &mut Taps::new(l.model.table(), &mut all)).unwrap();
        let cached = t.elapsed();
        drop(all);
        eprintln!("plain {plain:?}, all hooks cached {cached:?}");
    }
}

/// TL: a row whose mask is all 0 gets a zero pattern (softmax's NaN → 0), fused or observed.
#[test]
fn fully_masked_rows_attend_to_nothing() {
    let l = fixture();
    let tokens = Tensor::new(&[[2i64, 10, 3], [2, 11, 3]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1i64, 1, 0], [0, 0, 0]], &Device::Cpu).unwrap();
    let input = EncoderInput { tokens: &tokens, token_type_ids: None, mask: Some(&mask), abort: None };
    let mut none = crate::model::hooks::NoHooks;
    let fused = forward(&l.model, &input, Head::Mlm, &mut Taps::new(l.model.table(), &mut none)).unwrap();
    let mut all = All(vec![]);
    let observed = forward(&l.model, &input, Head::Mlm, &mut Taps::new(l.model.table(), &mut all)).unwrap();
    assert!(max_diff(&fused, &observed) < 1e-5);
    let v: Vec<f32> = fused.flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
    let id = l.model.hooks.block(0, crate::bert::EncBlockHook::Pattern).unwrap();
    let pattern = &all.0.iter().find(|(i, _)| *i == id).unwrap().1;
    let dead: Vec<f32> = pattern.get(1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!(dead.iter().all(|&x| x == 0.0));
    let live: Vec<f32> = pattern.get(0).unwrap().get(0).unwrap().get(0).unwrap().to_vec1().unwrap();
    assert!((live[0] + live[1] - 1.0).abs() < 1e-6 && live[2] == 0.0);
}

/// TL's flags against goldens/google-bert__bert-base-cased/flags (encoder_flags_fixtures.py):
/// every flagged hook, and the logits (the flags-off ones); `use_attn_in` is not BertBlock's.
#[test]
fn hook_flags_match_tl() {
    let mut l = fixture();
    let g = candle_core::safetensors::load(root().join("golden/google-bert__bert-base-cased/flags.safetensors"), &Device::Cpu).unwrap();
    for f in ["use_attn_result", "use_split_qkv_input", "use_hook_mlp_in"] {
        l.model.set_flag(f, true).unwrap();
    }
    assert!(l.model.set_flag("use_attn_in", true).is_err());
    let input = EncoderInput { tokens: &g["tokens"], token_type_ids: Some(&g["token_type_ids"]), mask: Some(&g["attention_mask"]), abort: None };
    let mut all = All(vec![]);
    let logits = forward(&l.model, &input, Head::Mlm, &mut Taps::new(l.model.table(), &mut all)).unwrap();
    assert!(max_diff(&logits, &g["logits"]) < 1e-4);
    let mut seen = 0;
    for (id, t) in &all.0 {
        if let Some(want) = g.get(&format!("cache.{}", l.model.table().name(*id))) {
            assert!(max_diff(t, want) < 1e-4, "{}", l.model.table().name(*id));
            seen += 1;
        }
    }
    assert_eq!(seen, 5 * l.model.cfg.n_layers);
}
