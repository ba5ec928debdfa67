//! Bindings for models built from a config, saving, and training steps.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::candle_core::Tensor;
use tl_engine::model::config::Config;
use tl_engine::model::transformer::HookedModel;
use tl_engine::tensor::ops;
use tl_engine::train::optim::{OptimizerConfig, OptimizerKind};
use tl_engine::train::trainer::Trainer;
use tl_engine::Error;

use crate::errors::{guard, to_napi, IntoNapi};
use crate::model::NativeModel;
use crate::tensor::NativeTensor;

/// `HookedTransformer(cfg)`: a model of the TL config (JSON) with freshly initialised weights.
#[napi]
pub fn create_model(env: Env, config_json: String, seed: String, dtype: String, device: Option<String>) -> Result<NativeModel> {
    guard(|| {
        let cfg = Config::from_json(&config_json).napi()?;
        let seed: u64 = seed.parse().map_err(|_| to_napi(Error::invalid(format!("seed must be a non-negative integer, got {seed}"))))?;
        let dtype = ops::parse_dtype(&dtype).napi()?;
        let label = device.unwrap_or_else(|| "cpu".into());
        let dev = tl_engine::device::parse(&label).napi()?;
        let mut model = tl_engine::train::init::random_model(cfg, seed, dtype, &tl_engine::candle_core::Device::Cpu).napi()?;
        if !dev.is_cpu() {
            model.to_device(&dev, &label).napi()?;
        }
        NativeModel::new(&env, model, None)
    })
}

#[napi]
impl NativeModel {
    /// Writes the model as a TL-format folder (model.safetensors, config.json, tokenizer files).
    #[napi]
    pub fn save(&self, dir: String) -> Result<()> {
        guard(|| {
            let m = self.m()?;
            let tok = self.tok_opt();
            tl_engine::load::tl_dir::save(&m, tok.as_deref(), std::path::Path::new(&dir)).napi()
        })
    }
}

#[napi(object)]
pub struct OptimizerArgs {
    /// `SGD`, `Adam` or `AdamW`.
    pub name: String,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

fn optimizer_config(a: &OptimizerArgs) -> tl_engine::Result<OptimizerConfig> {
    let cfg = OptimizerConfig {
        kind: OptimizerKind::from_name(&a.name)?,
        momentum: a.momentum,
        nesterov: a.nesterov,
        weight_decay: a.weight_decay,
        beta1: a.beta1,
        beta2: a.beta2,
        eps: a.eps,
    };
    cfg.check()?;
    Ok(cfg)
}

/// The optimiser state of one training run over a model's weights.
#[napi]
pub struct NativeTrainer {
    inner: Arc<Mutex<Trainer>>,
}

#[napi(object)]
pub struct StepResult {
    pub loss: f64,
    pub grad_norm: Option<f64>,
}

pub struct TrainStepTask {
    trainer: Arc<Mutex<Trainer>>,
    model: Arc<HookedModel>,
    tokens: Tensor,
    lr: f64,
    max_grad_norm: Option<f64>,
}

impl Task for TrainStepTask {
    type Output = StepResult;
    type JsValue = StepResult;

    fn compute(&mut self) -> Result<StepResult> {
        guard(|| {
            let mut t = self
                .trainer
                .try_lock()
                .map_err(|_| to_napi(Error::invalid("this trainer is already stepping: await the previous step")))?;
            let s = t.step(&self.model, &self.tokens, self.lr, self.max_grad_norm).napi()?;
            Ok(StepResult { loss: s.loss as f64, grad_norm: s.grad_norm })
        })
    }

    fn resolve(&mut self, _env: Env, out: StepResult) -> Result<StepResult> {
        Ok(out)
    }
}

#[napi]
impl NativeTrainer {
    /// Moves the model's weights into trainable variables (the model keeps views of them).
    #[napi(constructor)]
    pub fn new(model: &NativeModel, args: OptimizerArgs) -> Result<Self> {
        guard(|| {
            let cfg = optimizer_config(&args).napi()?;
            let mut next = HookedModel::clone(&*model.m()?);
            let trainer = Trainer::new(&mut next, cfg).napi()?;
            model.replace(next);
            Ok(NativeTrainer { inner: Arc::new(Mutex::new(trainer)) })
        })
    }

    /// One step on `tokens` (`[batch, pos]`) at learning rate `lr`.
    #[napi(ts_return_type = "Promise<StepResult>")]
    pub fn step(&self, model: &NativeModel, tokens: &NativeTensor, lr: f64, max_grad_norm: Option<f64>) -> Result<AsyncTask<TrainStepTask>> {
        guard(|| {
            Ok(AsyncTask::new(TrainStepTask {
                trainer: self.inner.clone(),
                model: model.m()?,
                tokens: tokens.tensor()?.clone(),
                lr,
                max_grad_norm,
            }))
        })
    }

    #[napi(getter)]
    pub fn steps(&self) -> Result<f64> {
        let t = self.inner.lock().map_err(|_| to_napi(Error::invalid("the trainer is poisoned")))?;
        Ok(t.steps() as f64)
    }
}
