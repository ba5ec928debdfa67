//! Bindings for tuned-lens training (`tl_engine::lens::train`).

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::candle_core::Tensor;
use tl_engine::lens::train::LensTrainer;
use tl_engine::model::transformer::HookedModel;
use tl_engine::train::optim::{OptimizerConfig, OptimizerKind};
use tl_engine::Error;

use crate::errors::{guard, to_napi, IntoNapi};
use crate::model::NativeModel;
use crate::tensor::{wrap, NativeTensor};

#[napi]
pub struct NativeLensTrainer {
    inner: Arc<Mutex<LensTrainer>>,
}

pub struct LensStepTask {
    trainer: Arc<Mutex<LensTrainer>>,
    model: Arc<HookedModel>,
    batches: Vec<Tensor>,
    lr: f64,
    /// None: a training step; Some(identity): evaluate (the logit lens when identity).
    eval: Option<bool>,
}

impl Task for LensStepTask {
    type Output = Vec<f64>;
    type JsValue = Vec<f64>;

    fn compute(&mut self) -> Result<Vec<f64>> {
        guard(|| {
            let mut t = self.trainer.try_lock().map_err(|_| to_napi(Error::invalid("this lens trainer is busy: await the previous call")))?;
            let out = match self.eval {
                None => t.step(&self.model, &self.batches, self.lr).napi()?,
                Some(identity) => t.eval(&self.model, &self.batches[0], identity).napi()?,
            };
            Ok(out.into_iter().map(f64::from).collect())
        })
    }

    fn resolve(&mut self, _env: Env, out: Vec<f64>) -> Result<Vec<f64>> {
        Ok(out)
    }
}

fn tensors(ts: &[&NativeTensor]) -> Result<Vec<Tensor>> {
    ts.iter().map(|t| t.tensor().cloned()).collect()
}

#[napi]
impl NativeLensTrainer {
    /// Translators (`weights[i]: [d, d]` torch layout, `biases[i]: [d]`) trained by SGD with
    /// Nesterov momentum, as tuned-lens.
    #[napi(constructor)]
    pub fn new(model: &NativeModel, weights: Vec<&NativeTensor>, biases: Vec<&NativeTensor>, train_bias: bool, momentum: f64, weight_decay: f64) -> Result<Self> {
        guard(|| {
            let cfg = OptimizerConfig { kind: OptimizerKind::Sgd, momentum, nesterov: momentum > 0.0, weight_decay, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
            let m = model.m()?;
            let t = LensTrainer::new(&m, &tensors(&weights)?, &tensors(&biases)?, train_bias, cfg).napi()?;
            Ok(NativeLensTrainer { inner: Arc::new(Mutex::new(t)) })
        })
    }

    /// One step over micro-batches of tokens: each layer's KL before the step.
    #[napi(ts_return_type = "Promise<number[]>")]
    pub fn step(&self, model: &NativeModel, batches: Vec<&NativeTensor>, lr: f64) -> Result<AsyncTask<LensStepTask>> {
        guard(|| Ok(AsyncTask::new(LensStepTask { trainer: self.inner.clone(), model: model.m()?, batches: tensors(&batches)?, lr, eval: None })))
    }

    /// Each layer's KL from the final distribution on `tokens` (identity: the logit lens).
    #[napi(ts_return_type = "Promise<number[]>")]
    pub fn evaluate(&self, model: &NativeModel, tokens: &NativeTensor, identity: bool) -> Result<AsyncTask<LensStepTask>> {
        guard(|| Ok(AsyncTask::new(LensStepTask { trainer: self.inner.clone(), model: model.m()?, batches: vec![tokens.tensor()?.clone()], lr: 0.0, eval: Some(identity) })))
    }

    /// Copies of the current translators: the weights, then the biases.
    #[napi]
    pub fn translators(&self, env: Env) -> Result<Vec<NativeTensor>> {
        guard(|| {
            let t = self.inner.lock().map_err(|_| to_napi(Error::invalid("the lens trainer is poisoned")))?;
            let mut out = Vec::new();
            for v in t.weights.iter().chain(&t.biases) {
                out.push(wrap(&env, v.as_tensor().copy().map_err(|e| to_napi(e.into()))?)?);
            }
            Ok(out)
        })
    }
}
