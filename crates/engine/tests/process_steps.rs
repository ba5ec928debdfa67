//! TL's processing methods on a loaded model (`process/steps.rs`, `load.rs`, `refactor.rs`) on
//! synthetic weights: agreement with load-time processing, invariants, and TL's errors.
//! (Numbers against TL live in __test__/surface.test.ts.)

use candle_core::{DType, Device, Tensor, D};
use tl_engine::model::config::Config;
use tl_engine::model::hooks::NoHooks;
use tl_engine::model::state_dict::state_dict;
use tl_engine::model::transformer::{ForwardInput, ForwardOptions, HookedModel};
use tl_engine::model::weights::{BlockWeights, MlpWeights, ModelWeights, NormWeights};
use tl_engine::process::steps::{load_and_process_model, process_state_dict, Step, TlProcess};
use tl_engine::process::{process, ProcessOptions};
use tl_engine::ErrorCode;

fn randn(shape: &[usize], scale: f64, shift: f64) -> Tensor {
    (Tensor::randn(0f32, 1f32, shape, &Device::Cpu).unwrap() * scale).unwrap().affine(1.0, shift).unwrap()
}

fn tiny() -> HookedModel {
    let (d, h, dh, l, v, ctx) = (16, 2, 8, 2, 40, 12);
    let mut cfg = Config { n_layers: l, d_model: d, d_head: dh, n_heads: h, n_ctx: ctx, d_vocab: v, act_fn: Some("gelu_new".into()), ..Config::default() };
    cfg.finalize().unwrap();
    let ln = || NormWeights { w: Some(randn(&[d], 0.1, 1.0)), b: Some(randn(&[d], 0.1, 0.0)) };
    let blocks = (0..l)
        .map(|_| BlockWeights {
            ln1: ln(),
            w_qkv: randn(&[d, 3 * h * dh], 0.3, 0.0),
            b_qkv: randn(&[3 * h * dh], 0.1, 0.0),
            w_o: randn(&[h * dh, d], 0.3, 0.0),
            b_o: randn(&[d], 0.1, 0.0),
            ln2: ln(),
            mlp: Some(MlpWeights {
                ln: None,
                w_gate: None,
                router: None,
                w_in: randn(&[d, 4 * d], 0.3, 0.0),
                b_in: randn(&[4 * d], 0.1, 0.0),
                w_out: randn(&[4 * d, d], 0.3, 0.0),
                b_out: randn(&[d], 0.1, 0.0),
            }),
            qk_norm: None,
            post_norms: None,
        })
        .collect();
    let w = ModelWeights {
        w_e: randn(&[v, d], 0.5, 0.0),
        embed_ln: None,
        w_pos: Some(randn(&[ctx, d], 0.5, 0.0)),
        blocks,
        ln_final: ln(),
        w_u: randn(&[d, v], 0.3, 0.0),
        b_u: randn(&[v], 0.1, 0.0),
    };
    HookedModel::new(cfg, w, Device::Cpu).unwrap()
}

fn logits(m: &HookedModel) -> Tensor {
    let tokens = Tensor::new(&[[3i64, 1, 4, 1, 5, 9, 2, 6]], &Device::Cpu).unwrap();
    m.forward(ForwardInput::Tokens(tokens), &ForwardOptions::default(), &mut NoHooks).unwrap().logits.unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn log_probs(m: &HookedModel) -> Tensor {
    candle_nn::ops::log_softmax(&logits(m), D::Minus1).unwrap()
}

const ALL: TlProcess = TlProcess { fold_ln: true, center_writing_weights: true, center_unembed: true, fold_value_biases: true, refactor_factored_attn_matrices: false };

#[test]
fn process_weights_on_a_loaded_model_equals_processing_at_load() {
    let raw = tiny();
    let after = load_and_process_model(&raw, &[], ALL).unwrap();
    assert_eq!(after.cfg().normalization_type.as_deref(), Some("LNPre"));
    let (mut cfg, mut w) = (raw.cfg().clone(), raw.weights.clone());
    process(&mut cfg, &mut w, ProcessOptions::ALL).unwrap();
    let at_load = HookedModel::new(cfg, w, Device::Cpu).unwrap();
    let (a, b) = (state_dict(&after.arch, &after.weights).unwrap(), state_dict(&at_load.arch, &at_load.weights).unwrap());
    assert_eq!(a.iter().map(|(k, _)| k).collect::<Vec<_>>(), b.iter().map(|(k, _)| k).collect::<Vec<_>>());
    for ((k, x), (_, y)) in a.iter().zip(&b).filter(|((k, _), _)| !k.ends_with("IGNORE")) {
        let (x, y) = (x.to_dtype(DType::F32).unwrap(), y.to_dtype(DType::F32).unwrap());
        assert!(max_diff(&x, &y) < 1e-5, "{k}");
    }
    // The original model is untouched (its weights are shared with runs in flight).
    assert!(raw.weights.blocks[0].ln1.w.is_some());
}

#[test]
fn a_state_dict_round_trips_and_refactoring_keeps_the_function() {
    let raw = tiny();
    let sd = state_dict(&raw.arch, &raw.weights).unwrap();
    let none = TlProcess::default();
    let reloaded = load_and_process_model(&raw, &sd, none).unwrap();
    assert_eq!(max_diff(&logits(&raw), &logits(&reloaded)), 0.0);
    let refactored = load_and_process_model(&raw, &[], TlProcess { refactor_factored_attn_matrices: true, ..none }).unwrap();
    let diff = max_diff(&logits(&raw), &logits(&refactored));
    assert!(diff < 1e-4, "refactoring changed the logits by {diff}");
    let processed = load_and_process_model(&raw, &[], ALL).unwrap();
    assert!(max_diff(&log_probs(&raw), &log_probs(&processed)) < 1e-4);
}

#[test]
fn tl_errors_name_the_key() {
    let raw = tiny();
    let processed = load_and_process_model(&raw, &[], ALL).unwrap();
    let e = load_and_process_model(&processed, &[], ALL).err().unwrap();
    assert_eq!(e.code, ErrorCode::MissingWeight);
    assert!(e.message.contains("'blocks.0.ln1.b'"), "{}", e.message);
    let bad = vec![("blocks.1.attn.W_Q".to_string(), Tensor::zeros((2, 16, 4), DType::F32, &Device::Cpu).unwrap())];
    let e = load_and_process_model(&raw, &bad, ALL).err().unwrap();
    assert_eq!(e.code, ErrorCode::ShapeMismatch);
    assert!(e.message.contains("blocks.1.attn.W_Q"), "{}", e.message);
}

#[test]
fn fold_layer_norm_on_a_state_dict_keeps_unfolded_biases_and_unknown_keys() {
    let raw = tiny();
    let mut sd = state_dict(&raw.arch, &raw.weights).unwrap();
    sd.push(("extra.thing".into(), Tensor::ones(3, DType::F32, &Device::Cpu).unwrap()));
    let out = process_state_dict(&raw, &sd, Step::FoldLayerNorm { fold_biases: false, center_weights: true }).unwrap();
    let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.contains(&"blocks.0.ln1.b") && !keys.contains(&"blocks.0.ln1.w"));
    assert!(keys.contains(&"ln_final.b") && !keys.contains(&"ln_final.w"));
    assert_eq!(keys.last(), Some(&"extra.thing"));
    let folded = process_state_dict(&raw, &sd, Step::FoldLayerNorm { fold_biases: true, center_weights: true }).unwrap();
    assert!(!folded.iter().any(|(k, _)| k.ends_with(".ln1.b")));
    // The model itself is unchanged.
    assert_eq!(raw.cfg().normalization_type.as_deref(), Some("LN"));
}
