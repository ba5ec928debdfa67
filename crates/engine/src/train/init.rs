//! A randomly initialised model from a TL config: `HookedTransformer(cfg)` with TL's
//! `init_weights` schemes (gpt2, xavier, kaiming, muP). The distributions and scales are TL's,
//! computed from TL's parameter shapes (`calc_fan_in_and_fan_out`); the random stream is the
//! engine's own (seeded xoshiro), not torch's. Biases are zero and norm weights one, as TL's
//! parameters start.

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::model::config::Config;
use crate::model::norm::NormKind;
use crate::model::transformer::{Arch, HookedModel};
use crate::model::weights::{BlockWeights, MlpWeights, ModelWeights, NormWeights, PostNorms, QkNorm};
use crate::tensor::random;

/// TL's `init_mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    Gpt2,
    XavierUniform,
    XavierNormal,
    KaimingUniform,
    KaimingNormal,
    MuP,
}

impl InitMode {
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "gpt2" => InitMode::Gpt2,
            "xavier_uniform" => InitMode::XavierUniform,
            "xavier_normal" => InitMode::XavierNormal,
            "kaiming_uniform" => InitMode::KaimingUniform,
            "kaiming_normal" => InitMode::KaimingNormal,
            "muP" => InitMode::MuP,
            other => {
                return Err(Error::invalid(format!(
                    "init_mode '{other}' is not one of gpt2, xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal, muP"
                )))
            }
        })
    }
}

/// Draws TL's weight matrices one after another from seeds derived from one base seed.
struct Draw<'a> {
    cfg: &'a Config,
    mode: InitMode,
    seed: u64,
    next: u64,
    dtype: DType,
    device: &'a Device,
}

impl Draw<'_> {
    /// A weight of `shape` (compute layout) whose TL parameter has fans `(fan_in, fan_out)`;
    /// `embed` marks TL's names containing "embed" (muP leaves them at scale 1).
    fn weight(&mut self, shape: &[usize], fan_in: usize, fan_out: usize, embed: bool) -> Result<Tensor> {
        let seed = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(self.next);
        self.next += 1;
        let gain = self.cfg.initializer_range;
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        let relu_gain = 2f64.sqrt();
        let (uniform, scale) = match self.mode {
            InitMode::Gpt2 => (false, gain),
            InitMode::XavierUniform => (true, gain * (6.0 / (fi + fo)).sqrt()),
            InitMode::XavierNormal => (false, gain * (2.0 / (fi + fo)).sqrt()),
            InitMode::KaimingUniform => (true, gain * relu_gain * (3.0 / fi).sqrt()),
            InitMode::KaimingNormal => (false, gain * relu_gain * (1.0 / fi).sqrt()),
            // TL's muP: "embed" names (W_E, W_pos and, as TL matches it first, W_U) keep scale 1,
            // every other weight 1/sqrt(fan_in); always drawn from a normal.
            InitMode::MuP => (false, if embed { 1.0 } else { 1.0 / fi.sqrt() }),
        };
        if uniform {
            random::uniform(shape, seed, -scale, scale, self.dtype, self.device)
        } else {
            random::normal(shape, seed, 0.0, scale, self.dtype, self.device)
        }
    }

    fn filled(&self, shape: &[usize], v: f64) -> Result<Tensor> {
        Ok(Tensor::full(v, shape, self.device)?.to_dtype(self.dtype)?)
    }

    fn norm(&self, kind: NormKind, d: usize) -> Result<NormWeights> {
        Ok(NormWeights {
            w: if kind.has_weight() { Some(self.filled(&[d], 1.0)?) } else { None },
            b: if kind.has_bias() { Some(self.filled(&[d], 0.0)?) } else { None },
        })
    }
}

/// Refuses a config whose weights would not fit in memory (an allocation failure aborts the
/// process): the parameter count against what the system reports available.
fn check_size(cfg: &Config, dtype: DType) -> Result<()> {
    let m = |xs: &[usize]| xs.iter().try_fold(1usize, |a, &x| a.checked_mul(x));
    let (d, l) = (cfg.d_model, cfg.n_layers);
    let per_layer = [
        m(&[d, cfg.qkv_width()]),
        m(&[cfg.n_heads, cfg.d_head, d]),
        m(&[d, cfg.d_mlp(), 3, cfg.num_experts.unwrap_or(1)]),
    ];
    let total = per_layer
        .iter()
        .try_fold(0usize, |a, x| x.and_then(|x| a.checked_add(x)))
        .and_then(|p| p.checked_mul(l))
        .and_then(|p| p.checked_add(m(&[cfg.d_vocab, d])?))
        .and_then(|p| p.checked_add(m(&[cfg.n_ctx, d])?))
        .and_then(|p| p.checked_add(m(&[d, cfg.d_vocab_out.max(cfg.d_vocab as i64) as usize])?))
        .and_then(|p| p.checked_mul(dtype.size_in_bytes()));
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
        line.split_whitespace().nth(1)?.parse::<usize>().ok().map(|kb| kb.saturating_mul(1024))
    });
    match (total, available) {
        (None, _) => Err(Error::invalid("the config's weights overflow any memory")),
        (Some(t), Some(a)) if t > a => Err(Error::invalid(format!(
            "the config's weights need {t} bytes but only {a} bytes of memory are available"
        ))),
        _ => Ok(()),
    }
}

/// A model of `cfg` (finalised here) with freshly initialised weights in `dtype` on `device`.
pub fn random_model(mut cfg: Config, seed: u64, dtype: DType, device: &Device) -> Result<HookedModel> {
    cfg.finalize()?;
    crate::model::validate::check(&cfg).map_err(|p| Error::invalid(format!("config field {} {}", p.field, p.message)))?;
    Arch::check(&cfg)?;
    check_size(&cfg, dtype)?;
    let mode = InitMode::from_name(&cfg.init_mode)?;
    let norm = NormKind::from_cfg(cfg.normalization_type.as_deref())?;
    let (d, h, dh, kv) = (cfg.d_model, cfg.n_heads, cfg.d_head, cfg.kv_heads());
    let d_vocab_out = if cfg.d_vocab_out > 0 { cfg.d_vocab_out as usize } else { cfg.d_vocab };
    let mut draw = Draw { cfg: &cfg, mode, seed, next: 0, dtype, device };
    let w_e = draw.weight(&[cfg.d_vocab, d], cfg.d_vocab, d, true)?;
    let w_pos = match cfg.positional_embedding_type.as_str() {
        "standard" => Some(draw.weight(&[cfg.n_ctx, d], cfg.n_ctx, d, true)?),
        _ => None,
    };
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for _ in 0..cfg.n_layers {
        // TL's W_Q: [h, d, dh] (fans d, h·dh); _W_K/_W_V: [kv, d, dh]; W_O: [h, dh, d].
        let q = draw.weight(&[d, h * dh], d, h * dh, false)?;
        let k = draw.weight(&[d, kv * dh], d, kv * dh, false)?;
        let v = draw.weight(&[d, kv * dh], d, kv * dh, false)?;
        let w_qkv = Tensor::cat(&[q, k, v], 1)?;
        let w_o = draw.weight(&[h * dh, d], dh, h * d, false)?;
        let mlp = if cfg.attn_only {
            None
        } else {
            let dm = cfg.d_mlp();
            if let Some(n) = cfg.num_experts {
                // TL's MoE: the router and each expert's W_in / W_gate / W_out are nn.Linear
                // weights `[out, in]`, whose TL fans are (out, in); drawn here in the stacked
                // compute layout (`[n, d, dm]`, `[n, dm, d]`, router `[d, n]`).
                let router = draw.weight(&[d, n], n, d, false)?;
                let w_in = draw.weight(&[n, d, dm], dm, d, false)?;
                let w_gate = draw.weight(&[n, d, dm], dm, d, false)?;
                let w_out = draw.weight(&[n, dm, d], d, dm, false)?;
                Some(MlpWeights { ln: None, w_in, w_gate: Some(w_gate), b_in: draw.filled(&[n, dm], 0.0)?, w_out, b_out: draw.filled(&[d], 0.0)?, router: Some(router) })
            } else {
                let w_in = draw.weight(&[d, dm], d, dm, false)?;
                let w_gate = if cfg.gated_mlp { Some(draw.weight(&[d, dm], d, dm, false)?) } else { None };
                let w_out = draw.weight(&[dm, d], dm, d, false)?;
                Some(MlpWeights { ln: None, w_in, w_gate, b_in: draw.filled(&[dm], 0.0)?, w_out, b_out: draw.filled(&[d], 0.0)?, router: None })
            }
        };
        let qk_norm = if cfg.use_qk_norm { Some(QkNorm { q: draw.filled(&[dh], 1.0)?, k: draw.filled(&[dh], 1.0)? }) } else { None };
        blocks.push(BlockWeights {
            ln1: draw.norm(norm, d)?,
            w_qkv,
            b_qkv: draw.filled(&[cfg.qkv_width()], 0.0)?,
            w_o,
            b_o: draw.filled(&[d], 0.0)?,
            ln2: if mlp.is_some() { draw.norm(norm, d)? } else { NormWeights::default() },
            mlp,
            qk_norm,
            // TL's ln1_post / ln2_post: RMSNorms with weights of ones.
            post_norms: if cfg.use_normalization_before_and_after {
                Some(PostNorms { attn: draw.norm(NormKind::RMS, d)?, mlp: draw.norm(NormKind::RMS, d)? })
            } else {
                None
            },
        });
    }
    let ln_final = draw.norm(norm, d)?;
    let w_u = draw.weight(&[d, d_vocab_out], d, d_vocab_out, true)?;
    let b_u = draw.filled(&[d_vocab_out], 0.0)?;
    // TL's Embed.ln: a LayerNorm whatever the model's norm kind.
    let embed_ln = if cfg.post_embedding_ln { Some(draw.norm(NormKind::LN, d)?) } else { None };
    let weights = ModelWeights { w_e, embed_ln, w_pos, blocks, ln_final, w_u, b_u };
    cfg.dtype = crate::tensor::ops::dtype_name(dtype).to_string();
    cfg.init_weights = true;
    HookedModel::new(cfg, weights, device.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: &str) -> Config {
        Config {
            n_layers: 2,
            d_model: 64,
            d_head: 16,
            n_ctx: 32,
            d_vocab: 50,
            act_fn: Some("gelu".into()),
            init_mode: mode.into(),
            ..Config::default()
        }
    }

    fn std(t: &Tensor) -> f64 {
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt()
    }

    #[test]
    fn scales_follow_tl_fans() {
        let m = random_model(cfg("gpt2"), 1, DType::F32, &Device::Cpu).unwrap();
        let want = 0.8 / 64f64.sqrt();
        assert!((std(&m.weights.blocks[0].w_o) / want - 1.0).abs() < 0.05);
        assert!((std(&m.weights.w_e) / want - 1.0).abs() < 0.1);
        let m = random_model(cfg("xavier_uniform"), 1, DType::F32, &Device::Cpu).unwrap();
        // W_in [64, 256]: uniform(±sqrt(6/320)) has std sqrt(6/320)/sqrt(3).
        let want = (6.0f64 / 320.0).sqrt() / 3f64.sqrt();
        let w_in = &m.weights.blocks[1].mlp.as_ref().unwrap().w_in;
        assert!((std(w_in) / want - 1.0).abs() < 0.05);
        let m = random_model(cfg("kaiming_normal"), 1, DType::F32, &Device::Cpu).unwrap();
        // W_O [h=4, dh=16, d]: fan_in 16.
        let want = 2f64.sqrt() / 4.0;
        assert!((std(&m.weights.blocks[0].w_o) / want - 1.0).abs() < 0.05);
        let b: Vec<f32> = m.weights.blocks[0].b_qkv.to_vec1().unwrap();
        assert!(b.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn seeds_repeat_and_differ() {
        let a = random_model(cfg("gpt2"), 3, DType::F32, &Device::Cpu).unwrap();
        let b = random_model(cfg("gpt2"), 3, DType::F32, &Device::Cpu).unwrap();
        let c = random_model(cfg("gpt2"), 4, DType::F32, &Device::Cpu).unwrap();
        let v = |m: &HookedModel| m.weights.blocks[1].w_qkv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(&a), v(&b));
        assert_ne!(v(&a), v(&c));
        assert!(random_model(cfg("orthogonal"), 3, DType::F32, &Device::Cpu).is_err());
    }
}
