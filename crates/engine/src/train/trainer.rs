//! One optimisation step of a model on a token batch (TL's `train` loop body): the LM loss
//! forward with the weights as autograd variables, the backward to every weight, optional
//! gradient clipping, and the optimiser's in-place update.
//!
//! [`Trainer::new`] moves the model's weights into variables and leaves the model holding
//! plain (untracked) views of the same storage, so the model runs at full speed between steps
//! and always sees the latest weights, with one copy of them in memory.

use candle_core::{Tensor, Var};

use crate::error::{Error, Result};
use crate::model::hooks::NoHooks;
use crate::model::transformer::{ForwardInput, ForwardOptions, HookedModel, ReturnType};
use crate::model::weights::ModelWeights;
use crate::train::optim::{clip_grad_norm, Optimizer, OptimizerConfig};

/// The gradient-run id training forwards use (hook runs from the binding count up from 0).
const TRAIN_RUN: u32 = u32::MAX;

pub struct Trainer {
    params: Vec<Var>,
    /// The model's weights as the variables' tensors (what the training forward reads).
    tracked: ModelWeights,
    opt: Optimizer,
    /// The ids of the untracked views the model was given: a model whose weights were replaced
    /// since (processing, a state dict, a device move) no longer trains through this trainer.
    views: Vec<candle_core::TensorId>,
}

/// What one step measured.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    pub loss: f32,
    /// The gradients' total 2-norm before clipping (when clipping was asked for).
    pub grad_norm: Option<f64>,
}

impl Trainer {
    pub fn new(model: &mut HookedModel, cfg: OptimizerConfig) -> Result<Self> {
        if !model.device.is_cpu() {
            return Err(Error::unsupported("training runs on the CPU only for now"));
        }
        if model.dtype() != candle_core::DType::F32 {
            return Err(Error::unsupported(format!("training needs float32 weights, the model has {:?}", model.dtype())));
        }
        let mut tracked = model.weights.clone();
        let mut params = Vec::new();
        for t in tracked.tensors_mut() {
            let v = Var::from_tensor(&t.contiguous()?)?;
            *t = v.as_tensor().clone();
            params.push(v);
        }
        let mut plain = tracked.clone();
        let mut views = Vec::new();
        for t in plain.tensors_mut() {
            *t = t.detach();
            views.push(t.id());
        }
        model.weights = plain;
        let opt = Optimizer::new(cfg, params.len())?;
        Ok(Trainer { params, tracked, opt, views })
    }

    pub fn steps(&self) -> u64 {
        self.opt.steps
    }

    /// The mean next-token loss of `tokens` (`[batch, pos]`), its gradient, and one update at
    /// learning rate `lr` (after clipping to `max_grad_norm` when given).
    pub fn step(&mut self, model: &HookedModel, tokens: &Tensor, lr: f64, max_grad_norm: Option<f64>) -> Result<StepStats> {
        if let Some(m) = max_grad_norm {
            if !(m.is_finite() && m > 0.0) {
                return Err(Error::invalid(format!("max_grad_norm must be a positive number, got {m}")));
            }
        }
        let (loss, mut grads) = self.loss_and_grads(model, tokens)?;
        let grad_norm = match max_grad_norm {
            Some(m) => Some(clip_grad_norm(&mut grads, m)?),
            None => None,
        };
        self.opt.step(&self.params, &grads, lr)?;
        Ok(StepStats { loss, grad_norm })
    }

    /// The loss and each parameter's gradient (None where the loss does not depend on it).
    pub fn loss_and_grads(&self, model: &HookedModel, tokens: &Tensor) -> Result<(f32, Vec<Option<Tensor>>)> {
        if tokens.rank() != 2 || tokens.dim(1)? < 2 {
            return Err(Error::shape(format!(
                "a training batch must be [batch, pos] tokens with pos >= 2, got {:?}",
                tokens.dims()
            )));
        }
        let mut current = model.weights.clone();
        if current.tensors_mut().iter().map(|t| t.id()).ne(self.views.iter().copied()) {
            return Err(Error::invalid(
                "the model's weights were replaced since training began (processing, a loaded state dict or a device move): start a new training run",
            ));
        }
        let m = HookedModel { weights: self.tracked.clone(), ..model.clone() };
        let opts = ForwardOptions { return_type: ReturnType::Loss, grad_run: Some(TRAIN_RUN), ..Default::default() };
        let out = m.forward(ForwardInput::Tokens(tokens.clone()), &opts, &mut NoHooks)?;
        let loss = out.loss.ok_or_else(|| Error::invalid("the forward returned no loss"))?;
        let value = loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(Error::invalid(format!("the loss is {value}: training diverged (lower the learning rate?)")));
        }
        let store = loss.backward()?;
        let grads = self.params.iter().map(|p| store.get(p.as_tensor()).cloned()).collect();
        Ok((value, grads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Config;
    use crate::train::init::random_model;
    use crate::train::optim::OptimizerKind;
    use candle_core::{DType, Device};

    fn model(attn_only: bool, norm: &str) -> HookedModel {
        model_with(attn_only, norm, |_| {})
    }

    fn model_with(attn_only: bool, norm: &str, edit: impl FnOnce(&mut Config)) -> HookedModel {
        let mut cfg = Config {
            n_layers: 2,
            d_model: 16,
            d_head: 4,
            n_ctx: 12,
            d_vocab: 11,
            act_fn: Some("gelu_new".into()),
            attn_only,
            normalization_type: Some(norm.into()),
            ..Config::default()
        };
        edit(&mut cfg);
        random_model(cfg, 5, DType::F32, &Device::Cpu).unwrap()
    }

    fn tokens() -> Tensor {
        let v: Vec<i64> = (0..24).map(|i| (i * 7 + 3) % 11).collect();
        Tensor::from_vec(v, (2, 12), &Device::Cpu).unwrap()
    }

    /// Every parameter's gradient against a central finite difference of the loss along a
    /// random direction.
    #[test]
    fn weight_gradients_match_finite_differences() {
        // Rotary, grouped K/V heads, a gated SiLU MLP and q/k norms: Llama/Qwen3-shaped.
        let llama = |c: &mut Config| {
            c.positional_embedding_type = "rotary".into();
            c.n_key_value_heads = Some(2);
            c.gated_mlp = true;
            c.act_fn = Some("silu".into());
            c.use_qk_norm = true;
        };
        let parallel = |c: &mut Config| c.parallel_attn_mlp = true;
        // Mixtral-shaped: routed experts.
        let moe = |c: &mut Config| {
            llama(c);
            c.use_qk_norm = false;
            c.num_experts = Some(4);
            c.experts_per_token = Some(2);
        };
        let cases: Vec<(bool, &str, Box<dyn Fn(&mut Config)>)> =
            vec![(false, "LN", Box::new(|_| {})), (true, "LN", Box::new(|_| {})), (false, "RMS", Box::new(llama)), (false, "LN", Box::new(parallel)), (false, "RMS", Box::new(moe))];
        for (attn_only, norm, edit) in cases {
            let mut m = model_with(attn_only, norm, |c| edit(c));
            let cfg = OptimizerConfig { kind: OptimizerKind::Sgd, momentum: 0.0, nesterov: false, weight_decay: 0.0, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
            let tr = Trainer::new(&mut m, cfg).unwrap();
            let (_, grads) = tr.loss_and_grads(&m, &tokens()).unwrap();
            for (i, (p, g)) in tr.params.iter().zip(&grads).enumerate() {
                let g = g.as_ref().unwrap_or_else(|| panic!("param {i} has no gradient"));
                let dir = Tensor::randn(0f32, 1.0, p.dims(), &Device::Cpu).unwrap();
                let norm = dir.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap() as f64;
                let dir = (dir / norm).unwrap();
                let want = (g * &dir).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
                let orig = p.as_tensor().copy().unwrap();
                let h = 1e-3;
                let loss_at = |s: f64| {
                    p.set(&(&orig + (&dir * s).unwrap()).unwrap()).unwrap();
                    let out = m.forward(ForwardInput::Tokens(tokens()), &ForwardOptions { return_type: ReturnType::Loss, ..Default::default() }, &mut NoHooks).unwrap();
                    out.loss.unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
                };
                let fd = (loss_at(h) - loss_at(-h)) / (2.0 * h);
                p.set(&orig).unwrap();
                let tol = 2e-3 * (1.0 + want.abs());
                assert!((fd - want).abs() < tol, "{norm} attn_only={attn_only} param {i}: fd {fd} vs grad {want}");
            }
        }
    }

    #[test]
    fn training_lowers_the_loss_and_the_model_sees_the_update() {
        let mut m = model(false, "LN");
        let cfg = OptimizerConfig { kind: OptimizerKind::Adam, momentum: 0.0, nesterov: false, weight_decay: 0.0, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let mut tr = Trainer::new(&mut m, cfg).unwrap();
        let before = m.forward(ForwardInput::Tokens(tokens()), &ForwardOptions { return_type: ReturnType::Loss, ..Default::default() }, &mut NoHooks).unwrap();
        let mut last = 0.0;
        for _ in 0..30 {
            last = tr.step(&m, &tokens(), 1e-2, Some(1.0)).unwrap().loss;
        }
        let after = m.forward(ForwardInput::Tokens(tokens()), &ForwardOptions { return_type: ReturnType::Loss, ..Default::default() }, &mut NoHooks).unwrap();
        let (b, a) = (before.loss.unwrap().to_scalar::<f32>().unwrap(), after.loss.unwrap().to_scalar::<f32>().unwrap());
        assert!(a < b * 0.7, "loss {b} -> {a} (last step {last})");
        assert!(!m.weights.w_e.track_op());
        assert_eq!(tr.steps(), 30);
    }
}
