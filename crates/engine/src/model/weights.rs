//! The model's weights in compute layout. This layout owns the numbers; TL's state dict
//! (`W_Q: [n_heads, d_model, d_head]`, ...) is derived from it on demand (`state_dict.rs`).
//!
//! Compute layout (all right-multiplying, 2-D where a matmul reads them):
//! - `w_qkv: [d_model, 3 * n_heads * d_head]`: columns are Q heads, then K heads, then V heads,
//!   each head a contiguous run of `d_head` columns. `b_qkv: [3 * n_heads * d_head]`.
//! - `w_o: [n_heads * d_head, d_model]`, `w_in: [d_model, d_mlp]`, `w_out: [d_mlp, d_model]`.
//! - `w_u: [d_model, d_vocab_out]`.

use candle_core::{Device, Tensor};

use crate::error::Result;

/// A norm's learnable parameters: `None` for the Pre (folded) variants.
#[derive(Debug, Clone, Default)]
pub struct NormWeights {
    pub w: Option<Tensor>,
    pub b: Option<Tensor>,
}

#[derive(Debug, Clone)]
pub struct BlockWeights {
    pub ln1: NormWeights,
    pub w_qkv: Tensor,
    pub b_qkv: Tensor,
    pub w_o: Tensor,
    pub b_o: Tensor,
    pub ln2: NormWeights,
    pub mlp: Option<MlpWeights>,
    /// TL's `attn.q_norm` / `attn.k_norm` (`use_qk_norm`), or None.
    pub qk_norm: Option<QkNorm>,
    /// TL's `ln1_post` / `ln2_post` (`use_normalization_before_and_after`), or None.
    pub post_norms: Option<PostNorms>,
}

/// The norms on the attention's and the MLP's outputs (TL's `ln1_post`, `ln2_post`): always
/// with their weights (weight processing leaves them), applied before `hook_attn_out` /
/// `hook_mlp_out`.
#[derive(Debug, Clone, Default)]
pub struct PostNorms {
    pub attn: NormWeights,
    pub mlp: NormWeights,
}

/// The RMSNorm weights (`[d_head]` each) applied to every head of Q and of K before rotary.
#[derive(Debug, Clone)]
pub struct QkNorm {
    pub q: Tensor,
    pub k: Tensor,
}

/// `w_in: [d_model, d_mlp]`; a gated MLP (TL's `GatedMLP`) also has `w_gate` of the same shape:
/// `act(x @ w_gate) * (x @ w_in) + b_in`.
///
/// With `router` (config `num_experts`), it is TL's `MoE`: `router: [d_model, num_experts]` (TL's
/// `mlp.W_gate`) picks `experts_per_token` experts per token, and the experts' gated MLPs are
/// stacked along a leading expert axis: `w_in`, `w_gate: [num_experts, d_model, d_mlp]`,
/// `b_in: [num_experts, d_mlp]` (zeros: TL's experts have no biases), `w_out: [num_experts,
/// d_mlp, d_model]`; `b_out: [d_model]` (zeros) is added once to the mixed output.
#[derive(Debug, Clone)]
pub struct MlpWeights {
    pub w_in: Tensor,
    pub w_gate: Option<Tensor>,
    pub b_in: Tensor,
    pub w_out: Tensor,
    pub b_out: Tensor,
    /// TL's MoE router (`mlp.W_gate`), or None: a dense MLP.
    pub router: Option<Tensor>,
    /// TL's `mlp.ln` with its weights (`[d_mlp]`): a layer-norm activation (`solu_ln`) of an
    /// unfolded LayerNorm model. None otherwise, and once folded (`mlp.ln` is then a
    /// LayerNormPre).
    pub ln: Option<NormWeights>,
}

impl MlpWeights {
    /// A dense MLP: `(W_in, b_in)`, `(W_out, b_out)` in the compute layout.
    pub fn dense((w_in, b_in): (Tensor, Tensor), (w_out, b_out): (Tensor, Tensor)) -> MlpWeights {
        MlpWeights { w_in, w_gate: None, b_in, w_out, b_out, router: None, ln: None }
    }

    /// TL's `GatedMLP`: `W_gate` beside `W_in`.
    pub fn gated(w_in: Tensor, w_gate: Tensor, b_in: Tensor, (w_out, b_out): (Tensor, Tensor)) -> MlpWeights {
        MlpWeights { w_in, w_gate: Some(w_gate), b_in, w_out, b_out, router: None, ln: None }
    }
}

impl BlockWeights {
    /// A block with its attention `(w_qkv, b_qkv)`, `(w_o, b_o)` and an MLP, without q/k norms
    /// or post-norms.
    pub fn new(ln1: NormWeights, (w_qkv, b_qkv): (Tensor, Tensor), (w_o, b_o): (Tensor, Tensor), ln2: NormWeights, mlp: MlpWeights) -> BlockWeights {
        BlockWeights { ln1, w_qkv, b_qkv, w_o, b_o, ln2, mlp: Some(mlp), qk_norm: None, post_norms: None }
    }
}

#[derive(Debug, Clone)]
pub struct ModelWeights {
    pub w_e: Tensor,
    /// TL's `embed.ln` (`post_embedding_ln`: a LayerNorm on the token embeddings), or None.
    pub embed_ln: Option<NormWeights>,
    pub w_pos: Option<Tensor>,
    pub blocks: Vec<BlockWeights>,
    pub ln_final: NormWeights,
    pub w_u: Tensor,
    pub b_u: Tensor,
}

impl ModelWeights {
    /// Bytes held by all weight tensors (views of one storage are counted once per view).
    pub fn nbytes(&self) -> usize {
        let t = |t: &Tensor| t.elem_count() * t.dtype().size_in_bytes();
        let n = |n: &NormWeights| n.w.as_ref().map(t).unwrap_or(0) + n.b.as_ref().map(t).unwrap_or(0);
        let mut total = t(&self.w_e) + self.w_pos.as_ref().map(t).unwrap_or(0) + n(&self.ln_final);
        total += self.embed_ln.as_ref().map(n).unwrap_or(0);
        total += t(&self.w_u) + t(&self.b_u);
        for b in &self.blocks {
            total += n(&b.ln1) + n(&b.ln2) + t(&b.w_qkv) + t(&b.b_qkv) + t(&b.w_o) + t(&b.b_o);
            if let Some(qk) = &b.qk_norm {
                total += t(&qk.q) + t(&qk.k);
            }
            if let Some(pn) = &b.post_norms {
                total += n(&pn.attn) + n(&pn.mlp);
            }
            if let Some(m) = &b.mlp {
                total += t(&m.w_in) + m.w_gate.as_ref().map(t).unwrap_or(0) + t(&m.b_in) + t(&m.w_out) + t(&m.b_out);
                total += m.router.as_ref().map(t).unwrap_or(0) + m.ln.as_ref().map(n).unwrap_or(0);
            }
        }
        total
    }

    /// Every weight tensor, in a fixed order (the parameters a trainer updates).
    pub fn tensors_mut(&mut self) -> Vec<&mut Tensor> {
        fn norm<'a>(out: &mut Vec<&'a mut Tensor>, n: &'a mut NormWeights) {
            out.extend(n.w.as_mut());
            out.extend(n.b.as_mut());
        }
        let mut out: Vec<&mut Tensor> = vec![&mut self.w_e];
        if let Some(ln) = &mut self.embed_ln {
            norm(&mut out, ln);
        }
        out.extend(self.w_pos.as_mut());
        for b in &mut self.blocks {
            norm(&mut out, &mut b.ln1);
            out.push(&mut b.w_qkv);
            out.push(&mut b.b_qkv);
            out.push(&mut b.w_o);
            out.push(&mut b.b_o);
            if let Some(qk) = &mut b.qk_norm {
                out.push(&mut qk.q);
                out.push(&mut qk.k);
            }
            // ln1_post's weight comes before ln2's, ln2_post's after the MLP's.
            let (post_attn, post_mlp) = match &mut b.post_norms {
                Some(pn) => (Some(&mut pn.attn), Some(&mut pn.mlp)),
                None => (None, None),
            };
            if let Some(n) = post_attn {
                norm(&mut out, n);
            }
            norm(&mut out, &mut b.ln2);
            if let Some(m) = &mut b.mlp {
                out.push(&mut m.w_in);
                out.extend(m.w_gate.as_mut());
                out.push(&mut m.b_in);
                out.push(&mut m.w_out);
                out.push(&mut m.b_out);
                out.extend(m.router.as_mut());
                // TL's MLP registers `ln` (a submodule) after its own parameters.
                if let Some(ln) = &mut m.ln {
                    norm(&mut out, ln);
                }
            }
            if let Some(n) = post_mlp {
                norm(&mut out, n);
            }
        }
        norm(&mut out, &mut self.ln_final);
        out.push(&mut self.w_u);
        out.push(&mut self.b_u);
        out
    }

    /// The same weights on `dev` (shared, not copied, when already there).
    pub fn to_device(&self, dev: &Device) -> Result<ModelWeights> {
        let t = |t: &Tensor| crate::device::to(t, dev);
        let o = |t: &Option<Tensor>| t.as_ref().map(|t| crate::device::to(t, dev)).transpose();
        let n = |n: &NormWeights| -> Result<NormWeights> { Ok(NormWeights { w: o(&n.w)?, b: o(&n.b)? }) };
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            let mlp = match &b.mlp {
                Some(m) => Some(MlpWeights {
                    ln: m.ln.as_ref().map(n).transpose()?,
                    w_in: t(&m.w_in)?,
                    w_gate: o(&m.w_gate)?,
                    b_in: t(&m.b_in)?,
                    w_out: t(&m.w_out)?,
                    b_out: t(&m.b_out)?,
                    router: o(&m.router)?,
                }),
                None => None,
            };
            blocks.push(BlockWeights {
                ln1: n(&b.ln1)?,
                w_qkv: t(&b.w_qkv)?,
                b_qkv: t(&b.b_qkv)?,
                w_o: t(&b.w_o)?,
                b_o: t(&b.b_o)?,
                ln2: n(&b.ln2)?,
                mlp,
                qk_norm: match &b.qk_norm {
                    Some(qk) => Some(QkNorm { q: t(&qk.q)?, k: t(&qk.k)? }),
                    None => None,
                },
                post_norms: match &b.post_norms {
                    Some(pn) => Some(PostNorms { attn: n(&pn.attn)?, mlp: n(&pn.mlp)? }),
                    None => None,
                },
            });
        }
        Ok(ModelWeights {
            w_e: t(&self.w_e)?,
            embed_ln: self.embed_ln.as_ref().map(n).transpose()?,
            w_pos: o(&self.w_pos)?,
            blocks,
            ln_final: n(&self.ln_final)?,
            w_u: t(&self.w_u)?,
            b_u: t(&self.b_u)?,
        })
    }
}
