//! The T5 engine on the fixture checkpoint (`__test__/fixtures/hub/models--google-t5--t5-small`,
//! scripts/reference/t5_fixtures.py): the KV-cached decoder against the full one.

use candle_core::{DType, Device, Tensor};

use crate::model::hooks::{NoHooks, Taps};
use crate::t5::load::load_from_dir;

fn fixture() -> std::path::PathBuf {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/hub/models--google-t5--t5-small");
    let rev = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    repo.join("snapshots").join(rev.trim())
}

#[test]
fn cached_decoding_equals_the_full_decoder() {
    let m = load_from_dir(&fixture(), "google-t5/t5-small", DType::F32, &Device::Cpu, "cpu").unwrap().model;
    let tokens = Tensor::new(&[[5i64, 17, 42, 9, 100, 1], [7, 3, 77, 1, 0, 0]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1i64, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], &Device::Cpu).unwrap();
    // 12 decoder positions: past the 8 exact buckets, so the logarithmic ones are exercised too.
    let dec: Vec<i64> = vec![0, 11, 250, 7, 33, 64, 18, 77, 3, 100, 9, 42];
    let n = dec.len();
    let both: Vec<i64> = dec.iter().chain(dec.iter().rev()).copied().collect();
    let dec_t = Tensor::from_vec(both.clone(), (2, n), &Device::Cpu).unwrap();
    let mut sink = NoHooks;
    let mut taps = Taps::new(&m.hooks.table, &mut sink);
    let enc = m.encode(&tokens, Some(&mask), None, &mut taps).unwrap();
    let full = m.decode(&enc, &dec_t, None, false, None, &mut taps).unwrap();
    let mut state = m.decoder_state(2).unwrap();
    // A first chunk of 3 positions, then one at a time.
    let mut at = 0;
    while at < n {
        let w = if at == 0 { 3 } else { 1 };
        let chunk = dec_t.narrow(1, at, w).unwrap();
        let step = m.decode(&enc, &chunk, Some(&mut state), true, None, &mut taps).unwrap();
        let want = full.narrow(1, at + w - 1, 1).unwrap();
        let d = (step - want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "position {}: cached logits differ by {d}", at + w - 1);
        at += w;
    }
    assert!(state.cross.iter().all(|c| c.is_some()));
}

/// With TL's hook flags on (every flagged point watched), the logits are the flags-off ones;
/// `use_attn_in` and `use_split_qkv_input` exclude each other.
#[test]
fn hook_flags_keep_the_logits() {
    struct All;
    impl crate::model::hooks::HookSink for All {
        fn wants(&self, _id: usize) -> bool {
            true
        }
        fn fire(&mut self, _id: usize, _t: &Tensor) -> crate::Result<Option<Tensor>> {
            Ok(None)
        }
    }
    let base = load_from_dir(&fixture(), "google-t5/t5-small", DType::F32, &Device::Cpu, "cpu").unwrap().model;
    let tokens = Tensor::new(&[[5i64, 17, 42, 9, 100, 1], [7, 3, 77, 1, 0, 0]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1i64, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], &Device::Cpu).unwrap();
    let dec = Tensor::new(&[[0i64, 11, 250, 7], [0, 33, 64, 18]], &Device::Cpu).unwrap();
    let want = base.forward(&tokens, &dec, Some(&mask), true, None, &mut NoHooks).unwrap().unwrap();
    for flags in [&["use_attn_result", "use_split_qkv_input", "use_hook_mlp_in"][..], &["use_attn_in"][..]] {
        let mut m = base.clone();
        for f in flags {
            m.set_flag(f, true).unwrap();
        }
        for sink in [&mut NoHooks as &mut dyn crate::model::hooks::HookSink, &mut All] {
            let got = m.forward(&tokens, &dec, Some(&mask), true, None, sink).unwrap().unwrap();
            let d = (got - &want).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(d < 1e-5, "{flags:?}: logits differ by {d}");
        }
    }
    let mut m = base.clone();
    m.set_flag("use_attn_in", true).unwrap();
    assert!(m.set_flag("use_split_qkv_input", true).is_err());
    assert!(!m.cfg.use_split_qkv_input);
    assert!(m.set_flag("ungroup_grouped_query_attention", true).is_err());
}
