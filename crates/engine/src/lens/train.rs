//! Training a tuned lens with tuned-lens 0.2.0's recipe (`tuned-lens train` defaults): one
//! affine translator per layer (`h + h Wᵀ + b`, identity at start), read through the model's
//! final norm and unembedding; per layer the KL divergence from the model's final distribution
//! at the same position (`Σ p_final (log p_final - log_softmax(lens(h)))`, mean over tokens),
//! gradients summed over micro-batches, clipped to a total norm of 1, and SGD with Nesterov
//! momentum. The model runs without gradients; only the translators are variables.

use candle_core::{DType, Tensor, Var, D};

use crate::error::{Error, Result};
use crate::model::hooks::{BlockHook, HookSink};
use crate::model::norm::NormKind;
use crate::model::transformer::{ForwardInput, ForwardOptions, HookedModel, ReturnType};
use crate::train::optim::{clip_grad_norm, Optimizer, OptimizerConfig};

/// Mean over positions of `KL(exp(labels) ‖ softmax(logits))`: fused where it can be.
fn mean_kl(logits: &Tensor, labels: &Tensor, probs: &Tensor) -> Result<Tensor> {
    let rows = match crate::kernels::kl_div::kl_from_logits(logits, labels, probs)? {
        Some(r) => r,
        None => {
            let logq = candle_nn::ops::log_softmax(logits, D::Minus1)?;
            (probs * (labels - logq)?)?.sum(D::Minus1)?
        }
    };
    Ok(rows.mean_all()?)
}

/// Captures every layer's `hook_resid_pre` (the hidden states tuned-lens reads).
struct ResidSink {
    ids: Vec<Option<usize>>,
    got: Vec<Option<Tensor>>,
}

impl HookSink for ResidSink {
    fn wants(&self, id: usize) -> bool {
        self.ids.contains(&Some(id))
    }
    fn fire(&mut self, id: usize, t: &Tensor) -> Result<Option<Tensor>> {
        if let Some(l) = self.ids.iter().position(|&i| i == Some(id)) {
            self.got[l] = Some(t.detach());
        }
        Ok(None)
    }
}

/// The model's final norm then unembedding (tuned-lens's `Unembed`), differentiable in `h`.
pub fn unembed(model: &HookedModel, h: &Tensor) -> Result<Tensor> {
    let cfg = model.cfg();
    let w = &model.weights.ln_final;
    let kind = model.arch.norm;
    let x = match kind {
        NormKind::None => h.clone(),
        _ => {
            let centred = if matches!(kind, NormKind::LN | NormKind::LNPre) { h.broadcast_sub(&h.mean_keepdim(D::Minus1)?)? } else { h.clone() };
            let scale = (centred.sqr()?.mean_keepdim(D::Minus1)? + cfg.eps)?.sqrt()?;
            let mut y = centred.broadcast_div(&scale)?;
            if let (true, Some(wt)) = (kind.has_weight(), &w.w) {
                y = y.broadcast_mul(wt)?;
            }
            if let (true, Some(b)) = (kind.has_bias(), &w.b) {
                y = y.broadcast_add(b)?;
            }
            y
        }
    };
    Ok(crate::kernels::linear::linear(&x, &model.weights.w_u, Some(&model.weights.b_u))?)
}

pub struct LensTrainer {
    /// Per layer: the translator's weight (`[d, d]`, torch's `[out, in]`) and bias (`[d]`).
    pub weights: Vec<Var>,
    pub biases: Vec<Var>,
    /// Whether the biases train (tuned-lens's `bias` config; without it they stay zero).
    train_bias: bool,
    opt: Optimizer,
}

impl LensTrainer {
    /// Starts from the given translators (`weights[i]: [d, d]`, `biases[i]: [d]`, one per layer).
    pub fn new(model: &HookedModel, weights: &[Tensor], biases: &[Tensor], train_bias: bool, cfg: OptimizerConfig) -> Result<Self> {
        let (n, d) = (model.cfg().n_layers, model.cfg().d_model);
        if weights.len() != n || biases.len() != n {
            return Err(Error::shape(format!("a tuned lens of this model has {n} translators, got {} weights and {} biases", weights.len(), biases.len())));
        }
        if !model.device.is_cpu() || model.dtype() != DType::F32 {
            return Err(Error::unsupported("tuned-lens training runs on float32 CPU models for now"));
        }
        let var = |t: &Tensor, shape: &[usize]| -> Result<Var> {
            if t.dims() != shape {
                return Err(Error::shape(format!("a translator parameter has shape {:?}, expected {shape:?}", t.dims())));
            }
            Ok(Var::from_tensor(&t.to_dtype(DType::F32)?.to_device(&model.device)?.contiguous()?)?)
        };
        let weights = weights.iter().map(|w| var(w, &[d, d])).collect::<Result<Vec<_>>>()?;
        let biases = biases.iter().map(|b| var(b, &[d])).collect::<Result<Vec<_>>>()?;
        let opt = Optimizer::new(cfg, 2 * n)?;
        Ok(LensTrainer { weights, biases, train_bias, opt })
    }

    /// The final log-probabilities and each layer's input residual for `tokens`.
    fn run_model(model: &HookedModel, tokens: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        let n = model.cfg().n_layers;
        let ids = (0..n).map(|l| model.hooks.block(l, BlockHook::ResidPre)).collect();
        let mut sink = ResidSink { ids, got: vec![None; n] };
        let out = model.forward(ForwardInput::Tokens(tokens.clone()), &ForwardOptions { return_type: ReturnType::Logits, ..Default::default() }, &mut sink)?;
        let logits = out.logits.ok_or_else(|| Error::invalid("the model returned no logits"))?;
        let labels = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
        let hs = sink.got.into_iter().map(|h| h.ok_or_else(|| Error::invalid("a layer's residual was not seen"))).collect::<Result<Vec<_>>>()?;
        Ok((labels, hs))
    }

    /// The translated hidden state of layer `i`: `h + h Wᵀ + b`.
    fn translate(&self, i: usize, h: &Tensor) -> Result<Tensor> {
        let w = self.weights[i].as_tensor();
        Ok((h + crate::kernels::linear::linear(h, &w.t()?, Some(self.biases[i].as_tensor()))?)?)
    }

    /// One optimiser step over `batches` (micro-batches of `[batch, pos]` tokens, gradients
    /// summed with weight `1 / batches.len()`), at learning rate `lr`. Returns each layer's
    /// loss (mean over the micro-batches), measured before the step.
    pub fn step(&mut self, model: &HookedModel, batches: &[Tensor], lr: f64) -> Result<Vec<f32>> {
        if batches.is_empty() {
            return Err(Error::invalid("a tuned-lens step needs at least one batch"));
        }
        let n = self.weights.len();
        let scale = 1.0 / batches.len() as f64;
        let mut grads: Vec<Option<Tensor>> = vec![None; 2 * n];
        let mut losses = vec![0f32; n];
        for tokens in batches {
            let (labels, hs) = Self::run_model(model, tokens)?;
            let probs = labels.exp()?;
            for (i, h) in hs.iter().enumerate() {
                let loss = mean_kl(&unembed(model, &self.translate(i, h)?)?, &labels, &probs)?;
                losses[i] += (loss.to_scalar::<f32>()? as f64 * scale) as f32;
                let store = (loss * scale)?.backward()?;
                for (slot, v) in [(2 * i, &self.weights[i]), (2 * i + 1, &self.biases[i])] {
                    if let Some(g) = store.get(v.as_tensor()) {
                        grads[slot] = Some(match grads[slot].take() {
                            Some(acc) => (acc + g)?,
                            None => g.clone(),
                        });
                    }
                }
            }
        }
        if !self.train_bias {
            grads.iter_mut().skip(1).step_by(2).for_each(|g| *g = None);
        }
        clip_grad_norm(&mut grads, 1.0)?;
        let params: Vec<Var> = (0..n).flat_map(|i| [self.weights[i].clone(), self.biases[i].clone()]).collect();
        self.opt.step(&params, &grads, lr)?;
        Ok(losses)
    }

    /// Each layer's KL from the final distribution under these translators (no step).
    pub fn eval(&self, model: &HookedModel, tokens: &Tensor, identity: bool) -> Result<Vec<f32>> {
        let (labels, hs) = Self::run_model(model, tokens)?;
        let probs = labels.exp()?;
        let mut out = Vec::with_capacity(hs.len());
        for (i, h) in hs.iter().enumerate() {
            let x = if identity { h.clone() } else { self.translate(i, h)?.detach() };
            out.push(mean_kl(&unembed(model, &x)?, &labels, &probs)?.to_scalar::<f32>()?);
        }
        Ok(out)
    }
}
