//! One forward run: the hook plan (cache / call-JS flags per hook id), the sink that carries
//! it out, and the result object handed back to JS.

use std::collections::HashMap;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::candle_core::Tensor;
use tl_engine::model::hooks::HookSink;
use tl_engine::model::transformer::{ForwardOptions, ForwardOutput, ReturnType};
use tl_engine::Result as TlResult;

use crate::errors::invalid;
use crate::tensor::{wrap, NativeTensor};

/// A JS hook as the forward calls it: hook id and activation in, replacement (or none) out.
pub type JsHook<'a> = dyn FnMut(u32, &Tensor) -> TlResult<Option<Tensor>> + 'a;

pub const CACHE: u8 = 1;
pub const CALL_JS: u8 = 2;
/// Tap the gradient here (runs with `gradRun`).
pub const GRAD: u8 = 4;

#[napi(object)]
pub struct ForwardArgs {
    /// "logits" | "loss" | "both" | "none"
    pub return_type: String,
    pub loss_per_token: Option<bool>,
    pub start_at_layer: Option<i64>,
    pub stop_at_layer: Option<i64>,
    /// Build the autograd graph; the id names the run in backward's dispatch calls.
    pub grad_run: Option<u32>,
}

pub fn options(a: &ForwardArgs) -> Result<ForwardOptions<'static>> {
    let return_type = match a.return_type.as_str() {
        "logits" => ReturnType::Logits,
        "loss" => ReturnType::Loss,
        "both" => ReturnType::Both,
        "none" => ReturnType::None,
        other => return Err(invalid(format!("returnType must be 'logits', 'loss', 'both' or null, got '{other}'"))),
    };
    Ok(ForwardOptions {
        return_type,
        loss_per_token: a.loss_per_token.unwrap_or(false),
        start_at_layer: a.start_at_layer,
        stop_at_layer: a.stop_at_layer,
        grad_run: a.grad_run,
        ..Default::default()
    })
}

/// Carries out a plan: caches flagged activations (in first-firing order; a hook point that
/// fires again overwrites its value, as TL's dict does) and calls JS where asked.
pub struct PlanSink<'a> {
    pub flags: &'a [u8],
    pub cache: Vec<(u32, Tensor)>,
    pos: HashMap<u32, usize>,
    pub js: Option<&'a mut JsHook<'a>>,
}

impl<'a> PlanSink<'a> {
    pub fn new(flags: &'a [u8]) -> Self {
        PlanSink { flags, cache: Vec::new(), pos: HashMap::new(), js: None }
    }
}

impl HookSink for PlanSink<'_> {
    fn wants(&self, id: usize) -> bool {
        self.flags.get(id).map(|&f| f != 0).unwrap_or(false)
    }

    fn wants_grad(&self, id: usize) -> bool {
        self.flags.get(id).map(|&f| f & GRAD != 0).unwrap_or(false)
    }

    fn fire(&mut self, id: usize, t: &Tensor) -> TlResult<Option<Tensor>> {
        let f = self.flags[id];
        let mut replaced = None;
        if f & CALL_JS != 0 {
            if let Some(js) = self.js.as_mut() {
                replaced = js(id as u32, t)?;
            }
        }
        if f & CACHE != 0 {
            // As TL's caching hook: the value, not its place in an autograd graph.
            let v = replaced.as_ref().unwrap_or(t).detach();
            match self.pos.get(&(id as u32)) {
                Some(&i) => self.cache[i].1 = v,
                None => {
                    self.pos.insert(id as u32, self.cache.len());
                    self.cache.push((id as u32, v));
                }
            }
        }
        Ok(replaced)
    }
}

/// What a run returns. Tensors are handed out once each (`take*`).
#[napi]
pub struct NativeRun {
    logits: Option<Tensor>,
    loss: Option<Tensor>,
    residual: Option<Tensor>,
    cache: Vec<(u32, Option<Tensor>)>,
}

impl NativeRun {
    pub fn new(out: ForwardOutput, cache: Vec<(u32, Tensor)>) -> Self {
        NativeRun {
            logits: out.logits,
            loss: out.loss,
            residual: out.residual,
            cache: cache.into_iter().map(|(i, t)| (i, Some(t))).collect(),
        }
    }
}

fn take(env: &Env, t: &mut Option<Tensor>) -> Result<Option<NativeTensor>> {
    match t.take() {
        Some(t) => Ok(Some(wrap(env, t)?)),
        None => Ok(None),
    }
}

#[napi]
impl NativeRun {
    #[napi]
    pub fn take_logits(&mut self, env: Env) -> Result<Option<NativeTensor>> {
        take(&env, &mut self.logits)
    }
    #[napi]
    pub fn take_loss(&mut self, env: Env) -> Result<Option<NativeTensor>> {
        take(&env, &mut self.loss)
    }
    #[napi]
    pub fn take_residual(&mut self, env: Env) -> Result<Option<NativeTensor>> {
        take(&env, &mut self.residual)
    }
    /// Hook ids of the cached activations, in firing order.
    #[napi]
    pub fn cache_ids(&self) -> Vec<u32> {
        self.cache.iter().map(|(i, _)| *i).collect()
    }
    #[napi]
    pub fn take_cached(&mut self, env: Env, index: u32) -> Result<Option<NativeTensor>> {
        match self.cache.get_mut(index as usize) {
            Some((_, t)) => take(&env, t),
            None => Ok(None),
        }
    }
}
