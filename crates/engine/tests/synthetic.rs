//! Engine tests on synthetic random weights: invariants TL's processing guarantees, hook
//! firing order, and replacement checks. (Numbers against TL live in the ava parity tests.)

use candle_core::{DType, Device, Tensor, D};
use tl_engine::model::config::Config;
use tl_engine::model::hooks::{HookSink, NoHooks};
use tl_engine::model::transformer::{ForwardInput, ForwardOptions, HookedModel};
use tl_engine::model::weights::{BlockWeights, MlpWeights, ModelWeights, NormWeights};
use tl_engine::process::{process, ProcessOptions};
use tl_engine::ErrorCode;

fn randn(shape: &[usize], scale: f64, shift: f64) -> Tensor {
    (Tensor::randn(0f32, 1f32, shape, &Device::Cpu).unwrap() * scale).unwrap().affine(1.0, shift).unwrap()
}

fn tiny() -> (Config, ModelWeights) {
    let (d, h, dh, l, v, ctx) = (16, 2, 8, 2, 40, 12);
    let mut cfg = Config {
        n_layers: l,
        d_model: d,
        d_head: dh,
        n_heads: h,
        n_ctx: ctx,
        d_vocab: v,
        act_fn: Some("gelu_new".into()),
        ..Config::default()
    };
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
        b_u: Tensor::zeros(v, DType::F32, &Device::Cpu).unwrap(),
    };
    (cfg, w)
}

fn tokens() -> Tensor {
    Tensor::new(&[[3i64, 1, 4, 1, 5, 9, 2, 6]], &Device::Cpu).unwrap()
}

fn log_probs(m: &HookedModel) -> Vec<f32> {
    let out = m.forward(ForwardInput::Tokens(tokens()), &ForwardOptions::default(), &mut NoHooks).unwrap();
    candle_nn::ops::log_softmax(&out.logits.unwrap(), D::Minus1).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn processing_preserves_log_probs() {
    let (cfg, w) = tiny();
    let raw = HookedModel::new(cfg.clone(), w.clone(), Device::Cpu).unwrap();
    let (mut cfg2, mut w2) = (cfg, w);
    process(&mut cfg2, &mut w2, ProcessOptions::ALL).unwrap();
    assert_eq!(cfg2.normalization_type.as_deref(), Some("LNPre"));
    let processed = HookedModel::new(cfg2, w2, Device::Cpu).unwrap();
    let (a, b) = (log_probs(&raw), log_probs(&processed));
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-4, "processing changed log-probs by {diff}");
}

struct Recorder {
    names: Vec<String>,
    table: Vec<String>,
    replace_at: Option<usize>,
}

impl HookSink for Recorder {
    fn wants(&self, _id: usize) -> bool {
        true
    }
    fn fire(&mut self, id: usize, t: &Tensor) -> tl_engine::Result<Option<Tensor>> {
        self.names.push(self.table[id].clone());
        if Some(id) == self.replace_at {
            return Ok(Some(t.narrow(0, 0, 1)?.narrow(1, 0, 1)?));
        }
        Ok(None)
    }
}

#[test]
fn hooks_fire_in_tl_order_and_bad_replacements_are_shape_errors() {
    let (cfg, w) = tiny();
    let m = HookedModel::new(cfg, w, Device::Cpu).unwrap();
    let table = m.hooks.names().to_vec();
    let mut rec = Recorder { names: vec![], table: table.clone(), replace_at: None };
    m.forward(ForwardInput::Tokens(tokens()), &ForwardOptions::default(), &mut rec).unwrap();
    let block0: Vec<&str> = rec.names.iter().filter(|n| n.starts_with("blocks.0.")).map(|s| s.as_str()).collect();
    assert_eq!(
        block0,
        [
            // TL normalises the attention input once each for Q, K and V: ln1 fires three times.
            "blocks.0.hook_resid_pre", "blocks.0.ln1.hook_scale", "blocks.0.ln1.hook_normalized", "blocks.0.ln1.hook_scale",
            "blocks.0.ln1.hook_normalized", "blocks.0.ln1.hook_scale", "blocks.0.ln1.hook_normalized", "blocks.0.attn.hook_q",
            "blocks.0.attn.hook_k", "blocks.0.attn.hook_v", "blocks.0.attn.hook_attn_scores", "blocks.0.attn.hook_pattern",
            "blocks.0.attn.hook_z", "blocks.0.hook_attn_out", "blocks.0.hook_resid_mid", "blocks.0.ln2.hook_scale",
            "blocks.0.ln2.hook_normalized", "blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_post", "blocks.0.hook_mlp_out",
            "blocks.0.hook_resid_post",
        ]
    );
    let id = m.hooks.id("blocks.1.hook_resid_pre").unwrap();
    let mut bad = Recorder { names: vec![], table, replace_at: Some(id) };
    let err = m.forward(ForwardInput::Tokens(tokens()), &ForwardOptions::default(), &mut bad).err().unwrap();
    assert_eq!(err.code, ErrorCode::ShapeMismatch);
    assert!(err.message.contains("blocks.1.hook_resid_pre"));
    assert_eq!(m.hooks.id("blocks.0.attn.hook_nope").err().unwrap().code, ErrorCode::UnknownHook);
}

#[test]
fn stop_and_start_at_layer_compose_to_the_full_forward() {
    let (cfg, w) = tiny();
    let m = HookedModel::new(cfg, w, Device::Cpu).unwrap();
    let full = m.forward(ForwardInput::Tokens(tokens()), &ForwardOptions::default(), &mut NoHooks).unwrap().logits.unwrap();
    let stop = ForwardOptions { stop_at_layer: Some(1), ..Default::default() };
    let resid = m.forward(ForwardInput::Tokens(tokens()), &stop, &mut NoHooks).unwrap().residual.unwrap();
    let start = ForwardOptions { start_at_layer: Some(1), ..Default::default() };
    let rest = m.forward(ForwardInput::Residual(resid), &start, &mut NoHooks).unwrap().logits.unwrap();
    let diff = (full - rest).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(diff, 0.0);
}
