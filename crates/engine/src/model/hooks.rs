//! Hook points: TL's names, a dense id per name, and the sink the forward taps into.
//!
//! The forward calls `taps.fire(id, tensor)` at every hook point. An id the run's plan does
//! not mention costs one bounds-checked load of a bool.

use std::sync::Arc;

use candle_core::Tensor;

use crate::error::{Error, ErrorCode, Result};
use crate::model::config::Config;
use crate::model::grad::GradRun;

/// The hook points of one transformer block, in TL's firing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum BlockHook {
    ResidPre,
    AttnIn,
    QInput,
    KInput,
    VInput,
    /// `attn.hook_attn_input`: TL builds it for shortformer models and never calls it.
    AttnInputUnused,
    Ln1Scale,
    Ln1Normalized,
    Q,
    K,
    V,
    QNormScale,
    QNormNormalized,
    KNormScale,
    KNormNormalized,
    RotQ,
    RotK,
    AttnScores,
    Pattern,
    Z,
    Result,
    Ln1PostScale,
    Ln1PostNormalized,
    AttnOut,
    ResidMid,
    MlpIn,
    Ln2Scale,
    Ln2Normalized,
    /// TL's MoE (`num_experts`): `mlp.hook_expert_weights` (the router's softmax over every
    /// expert, `[batch * pos, num_experts]`) and `mlp.hook_expert_indices` (the chosen experts,
    /// `[batch * pos, experts_per_token]`, int64); the experts' own hooks follow them
    /// ([`ExpertHook`]).
    MoeExpertWeights,
    MoeExpertIndices,
    MlpPre,
    MlpPreLinear,
    MlpMid,
    MlpLnScale,
    MlpLnNormalized,
    MlpPost,
    Ln2PostScale,
    Ln2PostNormalized,
    MlpOut,
    ResidPost,
}

/// How many hook points a block can have.
pub const N_BLOCK_HOOKS: usize = 40;

pub const BLOCK_HOOKS: [BlockHook; N_BLOCK_HOOKS] = {
    use BlockHook::*;
    [
        ResidPre, AttnIn, QInput, KInput, VInput, AttnInputUnused, Ln1Scale, Ln1Normalized, Q, K, V, QNormScale,
        QNormNormalized, KNormScale, KNormNormalized, RotQ, RotK, AttnScores, Pattern, Z, Result,
        Ln1PostScale, Ln1PostNormalized, AttnOut, ResidMid, MlpIn, Ln2Scale, Ln2Normalized, MoeExpertWeights, MoeExpertIndices, MlpPre, MlpPreLinear, MlpMid, MlpLnScale, MlpLnNormalized, MlpPost,
        Ln2PostScale, Ln2PostNormalized, MlpOut, ResidPost,
    ]
};

impl BlockHook {
    pub fn suffix(self) -> &'static str {
        use BlockHook::*;
        match self {
            ResidPre => "hook_resid_pre",
            AttnIn => "hook_attn_in",
            QInput => "hook_q_input",
            KInput => "hook_k_input",
            VInput => "hook_v_input",
            AttnInputUnused => "attn.hook_attn_input",
            Ln1Scale => "ln1.hook_scale",
            Ln1Normalized => "ln1.hook_normalized",
            Q => "attn.hook_q",
            K => "attn.hook_k",
            V => "attn.hook_v",
            QNormScale => "attn.q_norm.hook_scale",
            QNormNormalized => "attn.q_norm.hook_normalized",
            KNormScale => "attn.k_norm.hook_scale",
            KNormNormalized => "attn.k_norm.hook_normalized",
            RotQ => "attn.hook_rot_q",
            RotK => "attn.hook_rot_k",
            AttnScores => "attn.hook_attn_scores",
            Pattern => "attn.hook_pattern",
            Z => "attn.hook_z",
            Result => "attn.hook_result",
            Ln1PostScale => "ln1_post.hook_scale",
            Ln1PostNormalized => "ln1_post.hook_normalized",
            AttnOut => "hook_attn_out",
            ResidMid => "hook_resid_mid",
            MlpIn => "hook_mlp_in",
            Ln2Scale => "ln2.hook_scale",
            Ln2Normalized => "ln2.hook_normalized",
            MoeExpertWeights => "mlp.hook_expert_weights",
            MoeExpertIndices => "mlp.hook_expert_indices",
            MlpPre => "mlp.hook_pre",
            MlpPreLinear => "mlp.hook_pre_linear",
            MlpMid => "mlp.hook_mid",
            MlpLnScale => "mlp.ln.hook_scale",
            MlpLnNormalized => "mlp.ln.hook_normalized",
            MlpPost => "mlp.hook_post",
            Ln2PostScale => "ln2_post.hook_scale",
            Ln2PostNormalized => "ln2_post.hook_normalized",
            MlpOut => "hook_mlp_out",
            ResidPost => "hook_resid_post",
        }
    }

    /// Whether TL's module tree has this hook point for a model of this config.
    fn exists(self, cfg: &Config) -> bool {
        use BlockHook::*;
        let has_norm = cfg.normalization_type.is_some();
        let has_mlp = !cfg.attn_only;
        match self {
            Ln1Scale | Ln1Normalized => has_norm,
            Ln2Scale | Ln2Normalized => has_norm && has_mlp,
            Ln1PostScale | Ln1PostNormalized => has_norm && cfg.use_normalization_before_and_after,
            Ln2PostScale | Ln2PostNormalized => has_norm && has_mlp && cfg.use_normalization_before_and_after,
            RotQ | RotK => cfg.positional_embedding_type == "rotary",
            QNormScale | QNormNormalized | KNormScale | KNormNormalized => cfg.use_qk_norm,
            ResidMid => has_mlp && !cfg.parallel_attn_mlp,
            MoeExpertWeights | MoeExpertIndices => has_mlp && is_moe(cfg),
            MlpPre | MlpPost => has_mlp && !is_moe(cfg),
            MlpOut => has_mlp,
            MlpPreLinear => has_mlp && cfg.gated_mlp && !is_ln_activation(cfg) && !is_moe(cfg),
            MlpMid | MlpLnScale | MlpLnNormalized => has_mlp && is_ln_activation(cfg),
            AttnInputUnused => cfg.positional_embedding_type == "shortformer",
            _ => true,
        }
    }
}

/// TL's `MLPFactory`: any `num_experts` makes the MLP an `MoE`.
fn is_moe(cfg: &Config) -> bool {
    cfg.num_experts.is_some_and(|e| e > 0)
}

/// The hook points of one expert of TL's `MoE` (`mlp.experts.{e}.…`), in firing order; each
/// sees only the rows (tokens) routed to that expert: `[n_routed, d_mlp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertHook {
    /// `hook_gate`: `x @ W_gate`, before the activation.
    Gate,
    /// `hook_pre`: `x @ W_in`.
    Pre,
    /// `hook_post`: `act(gate) * pre`.
    Post,
}

pub const EXPERT_HOOKS: [ExpertHook; 3] = [ExpertHook::Gate, ExpertHook::Pre, ExpertHook::Post];

impl ExpertHook {
    pub fn suffix(self) -> &'static str {
        match self {
            ExpertHook::Gate => "hook_gate",
            ExpertHook::Pre => "hook_pre",
            ExpertHook::Post => "hook_post",
        }
    }
}

fn is_ln_activation(cfg: &Config) -> bool {
    // TL's `is_layer_norm_activation`.
    cfg.act_fn.as_deref().map(|a| a.ends_with("_ln")).unwrap_or(false)
}

/// Top-level (non-block) hook points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopHook {
    Tokens,
    Embed,
    PosEmbed,
    LnFinalScale,
    LnFinalNormalized,
    /// `embed.ln.hook_scale` / `embed.ln.hook_normalized` (`post_embedding_ln`).
    EmbedLnScale,
    EmbedLnNormalized,
}

/// Every hook point of a model: names in firing order and dense ids.
#[derive(Debug, Clone)]
pub struct HookTable {
    names: Vec<String>,
    top: [Option<usize>; 7],
    /// `blocks[l][BlockHook as usize]`
    blocks: Vec<[Option<usize>; N_BLOCK_HOOKS]>,
    /// `experts[l][e][ExpertHook as usize]` (empty without experts).
    experts: Vec<Vec<[usize; 3]>>,
}

impl HookTable {
    pub fn new(cfg: &Config) -> Self {
        let mut names = Vec::new();
        let mut push = |n: String| {
            names.push(n);
            Some(names.len() - 1)
        };
        let mut top = [None; 7];
        if cfg.use_hook_tokens {
            top[TopHook::Tokens as usize] = push("hook_tokens".into());
        }
        if cfg.post_embedding_ln {
            top[TopHook::EmbedLnScale as usize] = push("embed.ln.hook_scale".into());
            top[TopHook::EmbedLnNormalized as usize] = push("embed.ln.hook_normalized".into());
        }
        top[TopHook::Embed as usize] = push("hook_embed".into());
        // TL builds `pos_embed` for every scheme but rotary; under ALiBi its hook never fires.
        if matches!(cfg.positional_embedding_type.as_str(), "standard" | "shortformer" | "alibi") {
            top[TopHook::PosEmbed as usize] = push("hook_pos_embed".into());
        }
        let mut blocks = Vec::with_capacity(cfg.n_layers);
        let mut experts = Vec::new();
        for l in 0..cfg.n_layers {
            let mut ids = [None; N_BLOCK_HOOKS];
            let mut layer_experts = Vec::new();
            for h in BLOCK_HOOKS {
                if h.exists(cfg) {
                    ids[h as usize] = push(format!("blocks.{l}.{}", h.suffix()));
                }
                // TL's MoE fires its experts' hooks, expert by expert, after choosing them.
                if h == BlockHook::MoeExpertIndices && h.exists(cfg) {
                    for e in 0..cfg.num_experts.unwrap_or(0) {
                        let mut one = [0; 3];
                        for x in EXPERT_HOOKS {
                            one[x as usize] = push(format!("blocks.{l}.mlp.experts.{e}.{}", x.suffix())).unwrap_or(0);
                        }
                        layer_experts.push(one);
                    }
                }
            }
            blocks.push(ids);
            experts.push(layer_experts);
        }
        if cfg.normalization_type.is_some() {
            top[TopHook::LnFinalScale as usize] = push("ln_final.hook_scale".into());
            top[TopHook::LnFinalNormalized as usize] = push("ln_final.hook_normalized".into());
        }
        HookTable { names, top, blocks, experts }
    }

    /// A table of the given names alone (ids are their indices), for models outside the decoder
    /// layout (the encoder, `crate::bert`; T5, `crate::t5::hooks`), whose forwards fire by id
    /// through the same [`Taps`].
    pub fn from_names(names: Vec<String>) -> Self {
        HookTable { names, top: [None; 7], blocks: Vec::new(), experts: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
    pub fn name(&self, id: usize) -> &str {
        self.names.get(id).map(|s| s.as_str()).unwrap_or("<unknown hook>")
    }
    pub fn id(&self, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::new(ErrorCode::UnknownHook, format!("unknown hook name '{name}'"))
        })
    }
    pub fn top(&self, h: TopHook) -> Option<usize> {
        self.top[h as usize]
    }
    pub fn block(&self, layer: usize, h: BlockHook) -> Option<usize> {
        self.blocks.get(layer).and_then(|b| b[h as usize])
    }
    /// The id of expert `e`'s hook `h` in block `layer` (None without experts).
    pub fn expert(&self, layer: usize, e: usize, h: ExpertHook) -> Option<usize> {
        self.experts.get(layer).and_then(|x| x.get(e)).map(|ids| ids[h as usize])
    }
}

/// What happens at a hook point during one run.
pub trait HookSink {
    /// `true` when the sink wants to see this hook point.
    fn wants(&self, id: usize) -> bool;
    /// Called with the activation; returns a replacement or `None` to keep it.
    fn fire(&mut self, id: usize, t: &Tensor) -> Result<Option<Tensor>>;
    /// `true` when the run should tap this hook point's gradient (runs with a [`GradRun`]).
    fn wants_grad(&self, _id: usize) -> bool {
        false
    }
}

/// A sink that wants nothing: a plain forward.
pub struct NoHooks;
impl HookSink for NoHooks {
    fn wants(&self, _id: usize) -> bool {
        false
    }
    fn fire(&mut self, _id: usize, _t: &Tensor) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

/// The forward's handle on the sink: checks replacements against the original, and taps
/// gradients when the run has a [`GradRun`].
pub struct Taps<'a> {
    pub table: &'a HookTable,
    pub sink: &'a mut dyn HookSink,
    pub grad: Option<Arc<GradRun>>,
}

impl<'a> Taps<'a> {
    pub fn new(table: &'a HookTable, sink: &'a mut dyn HookSink) -> Self {
        Taps { table, sink, grad: None }
    }

    /// A run that builds the autograd graph: components take their differentiable paths.
    #[inline]
    pub fn grad_mode(&self) -> bool {
        self.grad.is_some()
    }

    /// A graph leaf for gradient runs (the residual stream's sources); `t` itself otherwise.
    pub fn root(&self, t: Tensor) -> Result<Tensor> {
        match &self.grad {
            Some(g) => g.root(&t),
            None => Ok(t),
        }
    }

    #[inline]
    pub fn active(&self, id: Option<usize>) -> bool {
        matches!(id, Some(i) if self.sink.wants(i))
    }

    pub fn fire(&mut self, id: Option<usize>, t: Tensor) -> Result<Tensor> {
        let Some(id) = id else { return Ok(t) };
        if !self.sink.wants(id) {
            return Ok(t);
        }
        let out = self.fire_fwd(id, t)?;
        match &self.grad {
            // Integer activations (hook_tokens) have no gradient: their hooks never fire, as in torch.
            Some(g) if self.sink.wants_grad(id) && out.dtype().is_float() => g.tap(id, out),
            _ => Ok(out),
        }
    }

    fn fire_fwd(&mut self, id: usize, t: Tensor) -> Result<Tensor> {
        match self.sink.fire(id, &t)? {
            None => Ok(t),
            Some(r) => {
                if r.dims() != t.dims() {
                    return Err(Error::shape(format!(
                        "hook '{}' returned a tensor of shape {:?}, expected {:?}",
                        self.table.name(id),
                        r.dims(),
                        t.dims()
                    )));
                }
                if r.dtype() != t.dtype() {
                    return Err(Error::dtype(format!(
                        "hook '{}' returned dtype {:?}, expected {:?}",
                        self.table.name(id),
                        r.dtype(),
                        t.dtype()
                    )));
                }
                // A replacement made on another device (Tensor.from is on the CPU) joins the run's.
                crate::device::to(&r, t.device())
            }
        }
    }
    pub fn block(&mut self, layer: usize, h: BlockHook, t: Tensor) -> Result<Tensor> {
        let id = self.table.block(layer, h);
        self.fire(id, t)
    }
    pub fn block_active(&self, layer: usize, h: BlockHook) -> bool {
        self.active(self.table.block(layer, h))
    }
    pub fn top(&mut self, h: TopHook, t: Tensor) -> Result<Tensor> {
        let id = self.table.top(h);
        self.fire(id, t)
    }
}
