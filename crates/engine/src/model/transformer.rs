//! The hooked transformer: embedding, blocks, final norm, unembedding; TL's `forward`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, ErrorCode, Result};
use crate::model::activation::Activation;
use crate::model::config::Config;
use crate::model::grad::GradRun;
use crate::model::hooks::{HookSink, HookTable, Taps, TopHook};
use crate::model::kv_cache::KvCache;
use crate::model::mask::{MaskPlan, Window};
use crate::model::norm::{self, NormHooks, NormKind};
use crate::model::weights::ModelWeights;
use crate::kernels::rotary::RotaryTable;
use crate::model::{block, loss, rotary};

/// Behaviour derived once from the config; components read this, never architecture names.
#[derive(Debug, Clone)]
pub struct Arch {
    pub cfg: Config,
    pub norm: NormKind,
    pub act: Activation,
    /// The sin/cos table of rotary models (TL's `rotary_sin` / `rotary_cos`), shared by layers.
    pub rotary: Option<Arc<RotaryTable>>,
    /// ALiBi's per-head multipliers and per-layer table length (`positional_embedding_type ==
    /// "alibi"`, `model::alibi`).
    pub alibi: Option<Arc<crate::model::alibi::Alibi>>,
}

impl Arch {
    /// Refuses behaviour the engine cannot run, without building anything.
    pub fn check(cfg: &Config) -> Result<()> {
        NormKind::from_cfg(cfg.normalization_type.as_deref())?;
        if let Some(a) = &cfg.act_fn {
            Activation::from_name(a)?;
        }
        if !matches!(cfg.positional_embedding_type.as_str(), "standard" | "rotary" | "alibi" | "shortformer") {
            return Err(Error::unsupported(format!(
                "positional_embedding_type '{}' is not supported yet",
                cfg.positional_embedding_type
            )));
        }
        // TL's norm after a sublayer is an RMSNorm for RMS models and unbound (an error) otherwise.
        if cfg.use_normalization_before_and_after && !matches!(cfg.normalization_type.as_deref(), Some("RMS" | "RMSPre")) {
            return Err(Error::unsupported("use_normalization_before_and_after needs an RMS normalization_type (as in TL)"));
        }
        Ok(())
    }

    /// The window of local-attention layers (TL's `window_size`), when some layer has one.
    pub fn local_window(&self) -> Option<usize> {
        if self.cfg.use_local_attn {
            self.cfg.window_size
        } else {
            None
        }
    }

    /// Whether `layer` attends locally (TL's `attn_types[layer] == "local"`).
    pub fn is_local(&self, layer: usize) -> bool {
        self.local_window().is_some() && self.cfg.attn_types.as_ref().and_then(|t| t.get(layer)).is_some_and(|t| t == "local")
    }

    pub fn new(cfg: Config) -> Result<Self> {
        Arch::check(&cfg)?;
        let norm = NormKind::from_cfg(cfg.normalization_type.as_deref())?;
        let act = match &cfg.act_fn {
            Some(a) => Activation::from_name(a)?,
            None => Activation::Relu,
        };
        let rotary = match cfg.positional_embedding_type.as_str() {
            "rotary" => Some(Arc::new(rotary::table(&cfg)?)),
            _ => None,
        };
        let alibi = (cfg.positional_embedding_type == "alibi").then(|| Arc::new(crate::model::alibi::Alibi::new(cfg.n_heads, cfg.n_layers)));
        Ok(Arch { cfg, norm, act, rotary, alibi })
    }
}

/// The masks of one forward: the causal (+ padding) one, and the banded one local-attention
/// layers read.
struct Plans {
    global: MaskPlan,
    local: Option<MaskPlan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnType {
    Logits,
    Loss,
    Both,
    None,
}

pub enum ForwardInput {
    /// `[batch, pos]` integer token ids.
    Tokens(Tensor),
    /// `[batch, pos, d_model]` residual stream, with `start_at_layer`.
    Residual(Tensor),
    /// `[batch, pos, d_model]` token embeddings (what `hook_embed` sees): positional
    /// embeddings are added as for tokens. TL's `generate` from `embeds`.
    Embeds(Tensor),
}

pub struct ForwardOptions<'a> {
    pub return_type: ReturnType,
    pub loss_per_token: bool,
    pub start_at_layer: Option<i64>,
    pub stop_at_layer: Option<i64>,
    /// Tokens for the loss when the input is a residual stream.
    pub tokens: Option<Tensor>,
    /// `[batch, pos]` 1 for real tokens, 0 for padding (the new positions only; with a KV
    /// cache it is appended to the cache's mask). None: no padding.
    pub attention_mask: Option<Tensor>,
    /// Unembed only one position per row (`[batch, 1, vocab]` logits): what decoding needs.
    pub logits_at: Option<Vec<usize>>,
    pub abort: Option<&'a AtomicBool>,
    /// Build the autograd graph and tap gradients where the sink asks (`wants_grad`); the id
    /// names the run in the [`crate::model::grad::GradEvent`]s of a later backward.
    pub grad_run: Option<u32>,
    /// Local attention counts each row's own tokens (`mask::Window::over_positions`), not TL's
    /// indices: what generation sets, so a padded row continues as its prompt alone.
    pub window_over_positions: bool,
}

impl Default for ForwardOptions<'_> {
    fn default() -> Self {
        ForwardOptions {
            return_type: ReturnType::Logits,
            loss_per_token: false,
            start_at_layer: None,
            stop_at_layer: None,
            tokens: None,
            attention_mask: None,
            logits_at: None,
            abort: None,
            grad_run: None,
            window_over_positions: false,
        }
    }
}

#[derive(Default)]
pub struct ForwardOutput {
    pub logits: Option<Tensor>,
    pub loss: Option<Tensor>,
    /// The residual stream when `stop_at_layer` ended the run early.
    pub residual: Option<Tensor>,
}

/// Cloning shares the weight storage (candle tensors are reference-counted).
#[derive(Clone)]
pub struct HookedModel {
    pub arch: Arch,
    pub weights: ModelWeights,
    pub hooks: HookTable,
    pub device: Device,
}

/// Python slice bound: negative counts from the end, clamped to `[0, n]`.
fn slice_bound(i: i64, n: usize) -> usize {
    let n = n as i64;
    let i = if i < 0 { i + n } else { i };
    i.clamp(0, n) as usize
}

impl HookedModel {
    pub fn new(cfg: Config, weights: ModelWeights, device: Device) -> Result<Self> {
        if cfg.post_embedding_ln != weights.embed_ln.is_some() {
            return Err(Error::invalid(format!("post_embedding_ln is {} but the weights {} an embedding LayerNorm", cfg.post_embedding_ln, if weights.embed_ln.is_some() { "have" } else { "lack" })));
        }
        if let Some(b) = weights.blocks.iter().find(|b| b.post_norms.is_some() != cfg.use_normalization_before_and_after) {
            return Err(Error::invalid(format!(
                "use_normalization_before_and_after is {} but a block's weights {} ln1_post / ln2_post",
                cfg.use_normalization_before_and_after,
                if b.post_norms.is_some() { "have" } else { "lack" }
            )));
        }
        let moe = cfg.num_experts.is_some_and(|e| e > 0);
        if weights.blocks.iter().filter_map(|b| b.mlp.as_ref()).any(|m| m.router.is_some() != moe) {
            return Err(Error::unsupported(format!(
                "num_experts is {:?} but a block's MLP weights {} a router (mixture-of-experts weights are built only by the Mixtral loader yet)",
                cfg.num_experts,
                if moe { "lack" } else { "have" }
            )));
        }
        let hooks = HookTable::new(&cfg);
        Ok(HookedModel { arch: Arch::new(cfg)?, weights, hooks, device })
    }

    pub fn cfg(&self) -> &Config {
        &self.arch.cfg
    }

    /// TL's `model.to(device)`: the weights move, and `cfg.device` becomes `label` (the name
    /// the user gave, as TL keeps it).
    pub fn to_device(&mut self, dev: &Device, label: &str) -> Result<()> {
        self.weights = self.weights.to_device(dev)?;
        self.device = dev.clone();
        self.arch.cfg.device = Some(crate::device::label(label));
        Ok(())
    }

    pub fn dtype(&self) -> DType {
        self.weights.w_e.dtype()
    }

    /// Rebuilds the hook table after a config flag changed (`use_attn_result`, ...).
    pub fn set_flag(&mut self, name: &str, value: bool) -> Result<()> {
        const FLAGS: [&str; 5] = ["use_attn_result", "use_split_qkv_input", "use_hook_mlp_in", "use_attn_in", "ungroup_grouped_query_attention"];
        let cfg = &mut self.arch.cfg;
        cfg.set_hook_flag(name, value, &FLAGS)?;
        self.hooks = HookTable::new(cfg);
        Ok(())
    }

    fn check_tokens(&self, tokens: &Tensor) -> Result<Tensor> {
        let tokens = match tokens.rank() {
            1 => tokens.unsqueeze(0)?,
            2 => tokens.clone(),
            r => return Err(Error::shape(format!("tokens must be [batch, pos] (or [pos]), got rank {r} with shape {:?}", tokens.dims()))),
        };
        if !matches!(tokens.dtype(), DType::I64 | DType::U32 | DType::I32 | DType::U8) {
            return Err(Error::dtype(format!("tokens must be an integer tensor, got {:?}", tokens.dtype())));
        }
        let tokens = if tokens.dtype() == DType::I64 { tokens } else { tokens.to_dtype(DType::I64)? };
        let p = tokens.dim(1)?;
        if p == 0 {
            return Err(Error::shape("tokens must have at least one position"));
        }
        if p > self.cfg().n_ctx {
            return Err(Error::shape(format!("sequence length {p} exceeds the model's n_ctx {}", self.cfg().n_ctx)));
        }
        let flat: Vec<i64> = tokens.flatten_all()?.to_vec1()?;
        let vocab = self.cfg().d_vocab as i64;
        if let Some(bad) = flat.iter().find(|&&t| t < 0 || t >= vocab) {
            return Err(Error::invalid(format!("token id {bad} is outside the vocabulary [0, {vocab})")));
        }
        // As TL's forward: tokens go to the model's device.
        crate::device::to(&tokens, &self.device)
    }

    /// `W_E[tokens]`: `[batch, pos]` ids → `[batch, pos, d_model]`, through the embedding
    /// LayerNorm where the model has one (TL's `model.embed`).
    pub fn token_embeddings(&self, tokens: &Tensor) -> Result<Tensor> {
        let x = self.lookup_embeddings(tokens)?;
        self.embed_ln(x, &mut Taps::new(&self.hooks, &mut crate::model::hooks::NoHooks))
    }

    fn lookup_embeddings(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, p) = tokens.dims2()?;
        let ids = crate::device::to(&tokens.flatten_all()?, &self.device)?;
        Ok(self.weights.w_e.index_select(&ids, 0)?.reshape((b, p, self.cfg().d_model))?)
    }

    /// TL's `embed.ln` (`post_embedding_ln`, Bloom): always a LayerNorm with its own weight and
    /// bias (weight processing leaves it), firing `embed.ln.hook_scale` / `hook_normalized`.
    fn embed_ln(&self, x: Tensor, taps: &mut Taps) -> Result<Tensor> {
        let Some(ln) = &self.weights.embed_ln else { return Ok(x) };
        let hooks = NormHooks { scale: self.hooks.top(TopHook::EmbedLnScale), normalized: self.hooks.top(TopHook::EmbedLnNormalized) };
        // The lookup is the graph's leaf, so gradients reach the norm's hooks.
        let x = taps.root(x)?;
        norm::apply(NormKind::LN, ln, self.cfg().eps, &x, hooks, taps)
    }

    /// Tokens → first residual stream (`input_to_embed` + `get_residual`).
    fn embed(&self, tokens: &Tensor, plan: &MaskPlan, taps: &mut Taps) -> Result<Tensor> {
        let tokens = taps.top(TopHook::Tokens, tokens.clone())?;
        let embed = self.lookup_embeddings(&tokens)?;
        let embed = self.embed_ln(embed, taps)?;
        self.add_positions(embed, plan, taps)
    }

    /// Token embeddings `[batch, pos, d_model]` (at `hook_embed`) plus the positional ones.
    fn add_positions(&self, embed: Tensor, plan: &MaskPlan, taps: &mut Taps) -> Result<Tensor> {
        let (b, p, d) = embed.dims3()?;
        let embed = taps.root(embed)?;
        let embed = taps.top(TopHook::Embed, embed)?;
        let Some(w_pos) = &self.weights.w_pos else { return Ok(embed) };
        let n_ctx = self.cfg().n_ctx;
        let pos = match (&plan.positions, &plan.pos_keep) {
            (Some(ids), Some(keep)) => {
                let max = ids.max_all()?.to_scalar::<i64>()?;
                if max as usize >= n_ctx {
                    return Err(Error::shape(format!("position {max} is past the model's n_ctx {n_ctx}")));
                }
                let pos = w_pos.index_select(&ids.flatten_all()?, 0)?.reshape((b, p, d))?;
                pos.broadcast_mul(keep)?
            }
            _ => {
                if plan.past + p > n_ctx {
                    return Err(Error::shape(format!(
                        "{} cached + {p} new positions exceed the model's n_ctx {n_ctx}",
                        plan.past
                    )));
                }
                let rows = w_pos.narrow(0, plan.past, p)?;
                if rows.track_op() {
                    // Training: the copies' gradients are summed by a contiguous pass.
                    crate::kernels::row_ops::repeat_rows(&rows, b)?
                } else {
                    rows.unsqueeze(0)?.broadcast_as((b, p, d))?.contiguous()?
                }
            }
        };
        let pos = taps.root(pos)?;
        let pos = taps.top(TopHook::PosEmbed, pos)?;
        if self.cfg().positional_embedding_type == "shortformer" {
            // TL's get_residual: the residual stream is the token embeddings alone; the blocks
            // add the positions to their Q/K inputs.
            let _ = plan.shortformer_pos.set(pos);
            return Ok(embed);
        }
        Ok((embed + pos)?)
    }

    pub fn forward(&self, input: ForwardInput, opts: &ForwardOptions, sink: &mut dyn HookSink) -> Result<ForwardOutput> {
        self.forward_kv(input, opts, None, sink)
    }

    /// The padding plan of one run: the new positions' mask joined to the cache's.
    fn mask_plan(&self, b: usize, q: usize, opts: &ForwardOptions, kv: Option<&mut KvCache>) -> Result<(Plans, Option<Tensor>)> {
        let dev = &self.device;
        let attention_mask = match &opts.attention_mask {
            Some(m) if m.dims() != [b, q] => {
                return Err(Error::shape(format!("the attention mask {:?} does not match the input [{b}, {q}]", m.dims())))
            }
            Some(m) => Some(crate::device::to(m, dev)?),
            None => None,
        };
        let causal = self.cfg().attention_dir == "causal";
        let (past, full) = match kv {
            Some(kv) => {
                kv.check_consistent()?;
                if kv.batch != b {
                    return Err(Error::shape(format!("the KV cache has batch size {} but the input has {b}", kv.batch)));
                }
                let past = kv.past_len();
                let new = match &attention_mask {
                    Some(m) => m.clone(),
                    None => Tensor::ones((b, q), DType::I64, dev)?,
                };
                (past, Some(kv.append_attention_mask(&new)?))
            }
            None => (0, attention_mask),
        };
        let plan = MaskPlan::new(b, q, past, full.as_ref(), causal, None, self.dtype(), dev)?;
        let local = match self.arch.local_window() {
            Some(size) => {
                let window = Window { size, over_positions: opts.window_over_positions };
                Some(MaskPlan::new(b, q, past, full.as_ref(), causal, Some(window), self.dtype(), dev)?)
            }
            None => None,
        };
        let loss_mask = match full {
            Some(f) => Some(f.narrow(1, past, q)?),
            None => None,
        };
        Ok((Plans { global: plan, local }, loss_mask))
    }

    /// TL's `forward` with an optional `past_kv_cache`.
    pub fn forward_kv(&self, input: ForwardInput, opts: &ForwardOptions, mut kv: Option<&mut KvCache>, sink: &mut dyn HookSink) -> Result<ForwardOutput> {
        let mut taps = Taps::new(&self.hooks, sink);
        if let Some(id) = opts.grad_run {
            if kv.is_some() {
                return Err(Error::unsupported("gradients (backward hooks, inclBwd) through a run with a KV cache are not supported"));
            }
            taps.grad = Some(GradRun::new(id));
        }
        let n = self.cfg().n_layers;
        let (mut residual, tokens, plan, loss_mask) = match (input, opts.start_at_layer) {
            (ForwardInput::Tokens(t), None) => {
                let t = self.check_tokens(&t)?;
                let (b, q) = t.dims2()?;
                let (plan, loss_mask) = self.mask_plan(b, q, opts, kv.as_deref_mut())?;
                (self.embed(&t, &plan.global, &mut taps)?, Some(t), plan, loss_mask)
            }
            (ForwardInput::Residual(r), Some(_)) => {
                if r.rank() != 3 || r.dim(2)? != self.cfg().d_model {
                    return Err(Error::shape(format!(
                        "start_at_layer needs a residual stream [batch, pos, {}], got {:?}",
                        self.cfg().d_model,
                        r.dims()
                    )));
                }
                let t = opts.tokens.as_ref().map(|t| self.check_tokens(t)).transpose()?;
                let (b, q, _) = r.dims3()?;
                let (plan, loss_mask) = self.mask_plan(b, q, opts, kv.as_deref_mut())?;
                let r = crate::device::to(&r.to_dtype(self.dtype())?, &self.device)?;
                let r = taps.root(r)?;
                (r, t, plan, loss_mask)
            }
            (ForwardInput::Embeds(e), None) => {
                let d = self.cfg().d_model;
                if e.rank() != 3 || e.dim(2)? != d || !e.dtype().is_float() {
                    return Err(Error::shape(format!("embeddings must be float [batch, pos, {d}], got {:?} {:?}", e.dtype(), e.dims())));
                }
                let (b, q, _) = e.dims3()?;
                let (plan, loss_mask) = self.mask_plan(b, q, opts, kv.as_deref_mut())?;
                let e = crate::device::to(&e.to_dtype(self.dtype())?, &self.device)?;
                let t = opts.tokens.as_ref().map(|t| self.check_tokens(t)).transpose()?;
                (self.add_positions(e, &plan.global, &mut taps)?, t, plan, loss_mask)
            }
            (ForwardInput::Tokens(_) | ForwardInput::Embeds(_), Some(_)) => {
                return Err(Error::invalid("start_at_layer needs a residual stream input, not tokens or embeddings"))
            }
            (ForwardInput::Residual(_), None) => return Err(Error::invalid("a residual-stream input needs start_at_layer")),
        };
        let start = slice_bound(opts.start_at_layer.unwrap_or(0), n);
        let stop = opts.stop_at_layer.map(|s| slice_bound(s, n)).unwrap_or(n);
        for layer in start..stop.max(start) {
            if opts.abort.map(|a| a.load(Ordering::Relaxed)).unwrap_or(false) {
                return Err(Error::new(ErrorCode::Aborted, "the forward pass was aborted"));
            }
            let entry = kv.as_deref_mut().map(|c| &mut c.entries[layer]);
            let layer_plan = match (&plan.local, self.arch.is_local(layer)) {
                (Some(local), true) => local,
                _ => &plan.global,
            };
            residual = block::forward(&self.arch, layer, &self.weights.blocks[layer], residual, layer_plan, entry, &mut taps)?;
        }
        if opts.stop_at_layer.is_some() {
            return Ok(ForwardOutput { residual: Some(residual), ..Default::default() });
        }
        let hooks = NormHooks {
            scale: self.hooks.top(TopHook::LnFinalScale),
            normalized: self.hooks.top(TopHook::LnFinalNormalized),
        };
        let residual = norm::apply(self.arch.norm, &self.weights.ln_final, self.cfg().eps, &residual, hooks, &mut taps)?;
        if opts.return_type == ReturnType::None {
            return Ok(ForwardOutput::default());
        }
        let residual = match &opts.logits_at {
            Some(at) => {
                let (b, p, d) = residual.dims3()?;
                if at.len() != b || at.iter().any(|&i| i >= p) {
                    return Err(Error::invalid(format!("logits_at {at:?} does not fit [{b}, {p}]")));
                }
                let idx: Vec<u32> = at.iter().enumerate().map(|(r, &i)| (r * p + i) as u32).collect();
                let idx = Tensor::from_vec(idx, b, residual.device())?;
                residual.reshape((b * p, d))?.index_select(&idx, 0)?.reshape((b, 1, d))?
            }
            None => residual,
        };
        let logits = self.unembed(&residual)?;
        let loss = match opts.return_type {
            ReturnType::Loss | ReturnType::Both => {
                let t = tokens.ok_or_else(|| Error::invalid("tokens must be given for return_type 'loss' or 'both'"))?;
                Some(loss::lm_cross_entropy(&logits, &t, loss_mask.as_ref(), opts.loss_per_token)?)
            }
            _ => None,
        };
        let logits = if opts.return_type == ReturnType::Loss { None } else { Some(logits) };
        Ok(ForwardOutput { logits, loss, residual: None })
    }

    fn unembed(&self, x: &Tensor) -> Result<Tensor> {
        let mut logits = crate::kernels::linear::linear(x, &self.weights.w_u, Some(&self.weights.b_u))?;
        let cap = self.cfg().output_logits_soft_cap;
        if cap > 0.0 {
            logits = ((logits / cap)?.tanh()? * cap)?;
        }
        Ok(logits)
    }
}
