//! SantaCoder (`GPT2LMHeadCustomModel`: `bigcode/santacoder`, remote code `modeling_gpt2_mq.py`):
//! GPT-2 with multi-query attention. Each block's `c_attn` is split into `q_attn`
//! (`Conv1D [d_model, d_model]`, every query head) and `kv_attn` (`Conv1D [d_model, 2 * d_head]`,
//! the one key head then the one value head), all `[in, out]` as in GPT-2.
//!
//! TL's `convert_coder_weights` copies the single K/V head into every head and leaves
//! `n_key_value_heads` unset, so TL's state dict (`W_K: [n_heads, d_model, d_head]`), its hooks
//! (`hook_k: [batch, pos, n_heads, d_head]`) and its KV cache are those of a multi-head model.
//! The conversion here does the same: the fused `w_qkv` holds the K and V columns `n_heads`
//! times, and the engine runs it as plain multi-head attention.
//!
//! TL's config: `n_ctx` from `n_positions`, `d_mlp` 4 * `n_embd`, `act_fn` and
//! `scale_attn_by_inverse_layer_idx` from config.json, `trust_remote_code`.

use candle_core::Tensor;

use crate::error::{Error, Result};
use crate::families::hf_linear::{conv1d, layer_norm, unembed, zeros};
use crate::families::{exact_div, hf_bool, hf_f64, hf_str, hf_usize, tl_mlp_width, Family};
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights};

pub const FAMILY: Family = Family {
    architecture: "GPT2LMHeadCustomModel",
    prefixes: &["transformer.", ""],
    hf_fields: &[
        ("n_layers", "n_layer"),
        ("d_model", "n_embd"),
        ("n_heads", "n_head"),
        ("n_ctx", "n_positions"),
        ("d_vocab", "vocab_size"),
        ("eps", "layer_norm_epsilon"),
        ("act_fn", "activation_function"),
        ("d_mlp", "n_inner"),
    ],
    config,
    tensors,
    layer_tensors,
    convert,
};

pub fn config(hf: &serde_json::Value) -> Result<Config> {
    // The remote code's other mode ("multihead") keeps GPT-2's fused c_attn, which TL's
    // conversion cannot read either.
    let head_type = hf_str(hf, "attention_head_type", "multiquery")?;
    if head_type != "multiquery" {
        return Err(Error::unsupported(format!(
            "GPT2LMHeadCustomModel with attention_head_type '{head_type}': only 'multiquery' (santacoder) is supported"
        )));
    }
    let d_model = hf_usize(hf, "n_embd")?;
    let n_heads = hf_usize(hf, "n_head")?;
    Ok(Config {
        d_model,
        d_head: exact_div(d_model, "n_embd", n_heads, "n_head")?,
        n_heads,
        // santacoder's n_inner is exactly 4 * n_embd.
        d_mlp: Some(tl_mlp_width(hf, "n_inner", d_model)?),
        n_layers: hf_usize(hf, "n_layer")?,
        n_ctx: hf_usize(hf, "n_positions")?,
        eps: hf_f64(hf, "layer_norm_epsilon", 1e-5)?,
        d_vocab: hf_usize(hf, "vocab_size")?,
        act_fn: Some(hf_str(hf, "activation_function", "gelu_new")?),
        use_attn_scale: true,
        use_local_attn: false,
        // TL: `"santacoder" in official_model_name`, and santacoder is one of the models TL
        // always loads with trust_remote_code.
        trust_remote_code: true,
        scale_attn_by_inverse_layer_idx: hf_bool(hf, "scale_attn_by_inverse_layer_idx", false)?,
        normalization_type: Some("LN".into()),
        original_architecture: Some("GPT2LMHeadCustomModel".into()),
        ..Config::default()
    })
}

fn layer(l: usize, s: &str) -> String {
    format!("h.{l}.{s}")
}

pub fn tensors(cfg: &Config) -> Vec<TensorSpec> {
    let (d, v) = (cfg.d_model, cfg.d_vocab);
    vec![
        TensorSpec::new("wte.weight", &[v, d]),
        TensorSpec::new("wpe.weight", &[cfg.n_ctx, d]),
        TensorSpec::new("ln_f.weight", &[d]),
        TensorSpec::new("ln_f.bias", &[d]),
        // Tied embeddings: lm_head is W_E; HF checkpoints usually omit it.
        TensorSpec::optional("lm_head.weight", &[v, d]),
    ]
}

pub fn layer_tensors(cfg: &Config, l: usize) -> Vec<TensorSpec> {
    let (d, m, dh) = (cfg.d_model, cfg.d_mlp(), cfg.d_head);
    let specs = [
        ("ln_1.weight", vec![d]),
        ("ln_1.bias", vec![d]),
        ("attn.q_attn.weight", vec![d, cfg.n_heads * dh]),
        ("attn.q_attn.bias", vec![cfg.n_heads * dh]),
        ("attn.kv_attn.weight", vec![d, 2 * dh]),
        ("attn.kv_attn.bias", vec![2 * dh]),
        ("attn.c_proj.weight", vec![cfg.n_heads * dh, d]),
        ("attn.c_proj.bias", vec![d]),
        ("ln_2.weight", vec![d]),
        ("ln_2.bias", vec![d]),
        ("mlp.c_fc.weight", vec![d, m]),
        ("mlp.c_fc.bias", vec![m]),
        ("mlp.c_proj.weight", vec![m, d]),
        ("mlp.c_proj.bias", vec![d]),
    ];
    TensorSpec::all(specs, |n| layer(l, n))
}

/// `q: [d_model, n_heads * d_head]` and the one head's `kv: [d_model, 2 * d_head]` (K columns,
/// then V) → the fused `w_qkv` with K and V copied into every head (TL's
/// `einops.repeat(W_K, "m h -> i m h")`); the last dimension is the columns, so the same call
/// fuses the biases (`[n_heads * d_head]`, `[2 * d_head]`).
fn fused_mqa(q: &Tensor, kv: &Tensor, n_heads: usize, d_head: usize) -> Result<Tensor> {
    let last = kv.rank() - 1;
    let k = kv.narrow(last, 0, d_head)?;
    let v = kv.narrow(last, d_head, d_head)?;
    let copies = |x: &Tensor| -> Result<Tensor> {
        let mut reps = vec![1; x.rank()];
        reps[last] = n_heads;
        Ok(x.repeat(reps.as_slice())?)
    };
    Ok(Tensor::cat(&[q.clone(), copies(&k)?, copies(&v)?], last)?.contiguous()?)
}

pub fn convert(cfg: &Config, w: &Checked) -> Result<ModelWeights> {
    let w_e = w.get("wte.weight")?;
    let (h, dh) = (cfg.n_heads, cfg.d_head);
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for l in 0..cfg.n_layers {
        let get = |s: &str| w.get(&layer(l, s));
        let c = |s: &str| conv1d(w, &layer(l, s));
        let w_qkv = fused_mqa(&get("attn.q_attn.weight")?, &get("attn.kv_attn.weight")?, h, dh)?;
        let b_qkv = fused_mqa(&get("attn.q_attn.bias")?, &get("attn.kv_attn.bias")?, h, dh)?;
        let mlp = MlpWeights::dense(c("mlp.c_fc")?, c("mlp.c_proj")?);
        blocks.push(BlockWeights::new(layer_norm(w, &layer(l, "ln_1"))?, (w_qkv, b_qkv), c("attn.c_proj")?, layer_norm(w, &layer(l, "ln_2"))?, mlp));
    }
    let w_u = unembed(w, &w_e)?;
    let b_u = zeros(cfg.d_vocab, &w_e)?;
    Ok(ModelWeights { w_e, embed_ln: None, w_pos: Some(w.get("wpe.weight")?), blocks, ln_final: layer_norm(w, "ln_f")?, w_u, b_u })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, IndexOp};
    use serde_json::json;

    fn hf() -> serde_json::Value {
        json!({
            "n_embd": 32, "n_head": 4, "n_layer": 2, "n_positions": 64, "n_ctx": 16, "vocab_size": 100,
            "activation_function": "gelu_fast", "scale_attn_by_inverse_layer_idx": true,
            "attention_head_type": "multiquery",
        })
    }

    #[test]
    fn config_is_tls() {
        let c = config(&hf()).unwrap();
        assert_eq!((c.d_model, c.d_head, c.n_heads, c.d_mlp, c.n_layers), (32, 8, 4, Some(128), 2));
        // n_positions, not n_ctx; K/V heads left unset as TL does.
        assert_eq!(c.n_ctx, 64);
        assert!(c.n_key_value_heads.is_none() && c.trust_remote_code && c.scale_attn_by_inverse_layer_idx);
        assert_eq!(c.act_fn.as_deref(), Some("gelu_fast"));
        let mut multihead = hf();
        multihead["attention_head_type"] = json!("multihead");
        assert_eq!(config(&multihead).unwrap_err().code, crate::error::ErrorCode::Unsupported);
    }

    #[test]
    fn the_one_kv_head_is_copied_into_every_head() {
        let (d, h, dh) = (6, 3, 2);
        let dev = Device::Cpu;
        let q = Tensor::arange(0f32, (d * h * dh) as f32, &dev).unwrap().reshape((d, h * dh)).unwrap();
        let kv = Tensor::arange(100f32, 100.0 + (d * 2 * dh) as f32, &dev).unwrap().reshape((d, 2 * dh)).unwrap();
        let w = fused_mqa(&q, &kv, h, dh).unwrap();
        assert_eq!(w.dims(), &[d, 3 * h * dh]);
        assert_eq!(w.i((.., ..h * dh)).unwrap().to_vec2::<f32>().unwrap(), q.to_vec2::<f32>().unwrap());
        for head in 0..h {
            let k = w.i((.., h * dh + head * dh..h * dh + (head + 1) * dh)).unwrap();
            let v = w.i((.., 2 * h * dh + head * dh..2 * h * dh + (head + 1) * dh)).unwrap();
            assert_eq!(k.to_vec2::<f32>().unwrap(), kv.i((.., ..dh)).unwrap().to_vec2::<f32>().unwrap());
            assert_eq!(v.to_vec2::<f32>().unwrap(), kv.i((.., dh..)).unwrap().to_vec2::<f32>().unwrap());
        }
        let bq = Tensor::zeros(h * dh, DType::F32, &dev).unwrap();
        let bkv = Tensor::new(&[1f32, 2., 3., 4.], &dev).unwrap();
        let b = fused_mqa(&bq, &bkv, h, dh).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(&b[h * dh..], &[1., 2., 1., 2., 1., 2., 3., 4., 3., 4., 3., 4.]);
    }
}
