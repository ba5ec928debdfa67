//! `NativeGeneration`: a decode loop in Rust, run as one pool task (`run`), step by step
//! (`step`, for streaming), or on the JS thread with JS hooks (`stepWithHooks`).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::candle_core::Tensor;
use tl_engine::generate::rng::Rng;
use tl_engine::generate::sampling::{sample_logits, SampleOptions};
use tl_engine::generate::{GenerateOptions, Generation};
use tl_engine::kernels::threads::on_pool;
use tl_engine::model::transformer::HookedModel;

use crate::errors::{guard, invalid, try_lock, IntoNapi};
use crate::model::{js_caller, NativeAbort, NativeModel};
use crate::run::{JsHook, NativeRun, PlanSink};
use tl_engine::model::transformer::ForwardOutput;
use crate::tensor::{wrap, NativeTensor};

/// How tokens are drawn from logits (TL's `sample_logits` arguments).
#[napi(object)]
pub struct SampleArgs {
    pub do_sample: bool,
    pub temperature: f64,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    pub freq_penalty: f64,
    /// A u64 seed as a decimal string (JS numbers lose bits past 2^53).
    pub seed: Option<String>,
}

#[napi(object)]
pub struct GenerateArgs {
    pub max_new_tokens: u32,
    pub stop_tokens: Vec<i64>,
    pub eos_pad: i64,
    pub use_kv_cache: bool,
    pub sample: SampleArgs,
}

fn sample_options(a: &SampleArgs) -> SampleOptions {
    SampleOptions { temperature: a.temperature, top_k: a.top_k.map(|k| k as usize), top_p: a.top_p, freq_penalty: a.freq_penalty }
}

pub(crate) fn parse_seed(s: &Option<String>) -> Result<Option<u64>> {
    match s {
        None => Ok(None),
        Some(s) => s.parse::<u64>().map(Some).map_err(|_| invalid(format!("a seed must be a non-negative integer below 2^64, got '{s}'"))),
    }
}

type Shared = Arc<Mutex<Generation>>;

fn lock(g: &Shared) -> Result<std::sync::MutexGuard<'_, Generation>> {
    try_lock(g, "this generation is already stepping: await the previous step")
}

/// Activations cached at each step (hook id, tensor), when the plan asks for any.
type Captured = Arc<Mutex<Vec<Vec<(u32, Tensor)>>>>;

#[napi]
pub struct NativeGeneration {
    model: Arc<HookedModel>,
    inner: Shared,
    captured: Captured,
}

/// One step with a fresh sink; what it cached is kept for `takeCaptured`.
fn step_once<'a>(
    g: &mut Generation,
    model: &HookedModel,
    flags: &'a [u8],
    js: Option<&'a mut JsHook<'a>>,
    abort: Option<&AtomicBool>,
    captured: &Captured,
) -> Result<Option<Vec<i64>>> {
    let mut sink = PlanSink::new(flags);
    sink.js = js;
    let out = g.step(model, &mut sink, abort).napi()?;
    if out.is_some() && !sink.cache.is_empty() {
        captured.lock().unwrap_or_else(|p| p.into_inner()).push(std::mem::take(&mut sink.cache));
    }
    Ok(out)
}

pub struct StepTask {
    model: Arc<HookedModel>,
    inner: Shared,
    steps: u32,
    flags: Vec<u8>,
    abort: Option<Arc<AtomicBool>>,
    captured: Captured,
}

impl Task for StepTask {
    /// New tokens, step-major: `steps × batch`.
    type Output = Vec<i64>;
    type JsValue = Vec<i64>;

    fn compute(&mut self) -> Result<Vec<i64>> {
        guard(|| {
            let mut g = lock(&self.inner)?;
            let g = &mut *g;
            on_pool(|| {
                let mut out = Vec::new();
                for _ in 0..self.steps {
                    match step_once(g, &self.model, &self.flags, None, self.abort.as_deref(), &self.captured)? {
                        Some(t) => out.extend(t),
                        None => break,
                    }
                }
                Ok(out)
            })
        })
    }

    fn resolve(&mut self, _env: Env, out: Vec<i64>) -> Result<Vec<i64>> {
        Ok(out)
    }
}

#[napi]
impl NativeModel {
    /// Starts a generation from `prompt` (`[batch, pos]` tokens or `[batch, pos, d_model]`
    /// embeddings) with its padding mask (or none).
    #[napi]
    pub fn start_generation(&self, prompt: &NativeTensor, attention_mask: Option<&NativeTensor>, args: GenerateArgs) -> Result<NativeGeneration> {
        guard(|| {
            let model = self.m()?;
            let opts = GenerateOptions {
                max_new_tokens: args.max_new_tokens as usize,
                stop_tokens: args.stop_tokens.clone(),
                eos_pad: args.eos_pad,
                do_sample: args.sample.do_sample,
                sample: sample_options(&args.sample),
                use_kv_cache: args.use_kv_cache,
                seed: parse_seed(&args.sample.seed)?,
            };
            let mask = match attention_mask {
                Some(m) => Some(m.tensor()?.clone()),
                None => None,
            };
            let g = Generation::new(&model, prompt.tensor()?, mask.as_ref(), opts).napi()?;
            Ok(NativeGeneration { model, inner: Arc::new(Mutex::new(g)), captured: Arc::new(Mutex::new(Vec::new())) })
        })
    }
}

#[napi]
impl NativeGeneration {
    /// Runs up to `steps` decode steps on the thread pool; resolves with the new tokens.
    #[napi(ts_return_type = "Promise<Array<number>>")]
    pub fn step(&self, steps: u32, flags: Vec<u8>, abort: Option<&NativeAbort>) -> AsyncTask<StepTask> {
        AsyncTask::new(StepTask {
            model: self.model.clone(),
            inner: self.inner.clone(),
            steps,
            flags,
            abort: abort.map(|a| a.flag.clone()),
            captured: self.captured.clone(),
        })
    }

    /// One decode step on the JS thread, calling `hook(id, tensor)` at flagged hook points.
    #[napi]
    pub fn step_with_hooks(&self, env: Env, flags: Vec<u8>, hook: Function<FnArgs<(u32, NativeTensor)>, Unknown>) -> Result<Vec<i64>> {
        guard(|| {
            let mut g = lock(&self.inner)?;
            let mut call = js_caller(&env, &hook);
            Ok(step_once(&mut g, &self.model, &flags, Some(&mut call), None, &self.captured)?.unwrap_or_default())
        })
    }

    /// The activations cached at each step so far (one run per step, oldest first); taking
    /// them empties the list.
    #[napi]
    pub fn take_captured(&self) -> Vec<NativeRun> {
        let steps = std::mem::take(&mut *self.captured.lock().unwrap_or_else(|p| p.into_inner()));
        steps.into_iter().map(|c| NativeRun::new(ForwardOutput::default(), c)).collect()
    }

    #[napi]
    pub fn is_done(&self) -> Result<bool> {
        Ok(lock(&self.inner)?.is_done())
    }

    #[napi]
    pub fn produced(&self) -> Result<u32> {
        Ok(lock(&self.inner)?.produced() as u32)
    }

    /// `[batch, prompt + generated]` int64.
    #[napi]
    pub fn output_tokens(&self, env: Env) -> Result<NativeTensor> {
        guard(|| wrap(&env, lock(&self.inner)?.output_tokens().napi()?))
    }

    /// `[batch, generated]` int64.
    #[napi]
    pub fn new_tokens(&self, env: Env) -> Result<NativeTensor> {
        guard(|| wrap(&env, lock(&self.inner)?.new_tokens().napi()?))
    }

    /// `[batch, prompt + generated, d_model]`: TL's `return_type="embeds"`.
    #[napi]
    pub fn output_embeds(&self, env: Env) -> Result<NativeTensor> {
        guard(|| wrap(&env, lock(&self.inner)?.output_embeds(&self.model).napi()?))
    }

    /// `[batch, prompt + generated]` int64, 1 for real tokens.
    #[napi]
    pub fn attention_mask(&self, env: Env) -> Result<NativeTensor> {
        guard(|| wrap(&env, lock(&self.inner)?.attention_mask().napi()?))
    }
}

/// TL's `utils.sample_logits` on `[batch, vocab]` logits; `tokens [batch, n]` for the
/// frequency penalty.
#[napi]
pub fn sample_logits_native(env: Env, logits: &NativeTensor, tokens: Option<&NativeTensor>, args: SampleArgs) -> Result<NativeTensor> {
    guard(|| {
        let history: Option<Vec<Vec<i64>>> = match tokens {
            Some(t) => Some(t.tensor()?.to_dtype(tl_engine::candle_core::DType::I64).napi()?.to_vec2().napi()?),
            None => None,
        };
        let mut rng = match parse_seed(&args.seed)? {
            Some(s) => Rng::new(s),
            None => Rng::from_time(),
        };
        let out = sample_logits(logits.tensor()?, history.as_deref(), args.do_sample, &sample_options(&args), &mut rng).napi()?;
        let n = out.len();
        wrap(&env, Tensor::from_vec(out, n, &tl_engine::candle_core::Device::Cpu).napi()?)
    })
}
