//! `NativeModel`: a loaded model (weights, hook table, tokenizer) and its runs.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::candle_core::{Device, Tensor};
use tl_engine::load::model::{load_from_dir, LoadOptions};
use tl_engine::load::tokenizer::Tokenizer;
use tl_engine::model::kv_cache::KvCache;
use tl_engine::model::mask::attention_mask_from_tokens;
use tl_engine::model::state_dict::state_dict;
use tl_engine::model::transformer::{ForwardInput, HookedModel};
use tl_engine::process::{steps, ProcessOptions};
use tl_engine::tensor::ops;
use tl_engine::{Error, ErrorCode};

use crate::errors::{guard, to_napi, IntoNapi};
use crate::kv::{lock_kv, NativeKvCache, SharedKv};
use crate::run::{options, ForwardArgs, JsHook, NativeRun, PlanSink};
use crate::slot::ModelSlot;
use crate::tensor::{wrap, NativeTensor};

#[napi(object)]
pub struct LoadArgs {
    pub dir: String,
    pub official_name: String,
    pub fold_ln: bool,
    pub center_writing_weights: bool,
    pub center_unembed: bool,
    pub fold_value_biases: bool,
    pub dtype: String,
    pub default_prepend_bos: Option<bool>,
    pub first_n_layers: Option<u32>,
    /// TL's `default_padding_side == 'left'`.
    pub padding_left: bool,
    /// `cpu`, `cuda` or `cuda:N` (default `cpu`).
    pub device: Option<String>,
    pub checkpoint: Option<crate::config::Checkpoint>,
}

pub struct LoadTask {
    dir: String,
    opts: LoadOptions,
}

impl Task for LoadTask {
    type Output = (HookedModel, Option<Tokenizer>);
    type JsValue = NativeModel;

    fn compute(&mut self) -> Result<Self::Output> {
        guard(|| {
            let l = load_from_dir(std::path::Path::new(&self.dir), &self.opts).napi()?;
            Ok((l.model, l.tokenizer))
        })
    }

    fn resolve(&mut self, env: Env, (model, tok): Self::Output) -> Result<NativeModel> {
        NativeModel::new(&env, model, tok)
    }
}

#[napi(ts_return_type = "Promise<NativeModel>")]
pub fn load_model(args: LoadArgs) -> Result<AsyncTask<LoadTask>> {
    guard(|| {
        let dtype = ops::parse_dtype(&args.dtype).napi()?;
        if !dtype.is_float() {
            return Err(to_napi(Error::dtype(format!("a model dtype must be a float type, got '{}'", args.dtype))));
        }
        let device_label = args.device.clone().unwrap_or_else(|| "cpu".into());
        let device = tl_engine::device::parse(&device_label).napi()?;
        let opts = LoadOptions {
            official_name: args.official_name,
            process: ProcessOptions {
                fold_ln: args.fold_ln,
                center_writing_weights: args.center_writing_weights,
                center_unembed: args.center_unembed,
                fold_value_biases: args.fold_value_biases,
            },
            dtype,
            device,
            device_label,
            default_prepend_bos: args.default_prepend_bos,
            first_n_layers: args.first_n_layers.map(|n| n as usize),
            padding_left: args.padding_left,
            checkpoint: crate::config::Checkpoint::engine(&args.checkpoint),
        };
        Ok(AsyncTask::new(LoadTask { dir: args.dir, opts }))
    })
}

/// The hook dispatcher on the JS thread: `hook(id, tensor)` returns a replacement NativeTensor
/// or nothing.
pub fn js_caller<'a>(
    env: &'a Env,
    hook: &'a Function<'a, FnArgs<(u32, NativeTensor)>, Unknown<'a>>,
) -> impl FnMut(u32, &Tensor) -> tl_engine::Result<Option<Tensor>> + 'a {
    move |id: u32, t: &Tensor| {
        let arg = wrap(env, t.clone()).map_err(|e| Error::new(ErrorCode::Hook, e.reason.clone()))?;
        let ret = hook.call(FnArgs::from((id, arg))).map_err(|e| Error::new(ErrorCode::Hook, e.reason.clone()))?;
        returned_tensor(env, ret)
    }
}

/// A hook's return value: a NativeTensor (a replacement) or undefined/null (none).
pub fn returned_tensor(env: &Env, ret: Unknown) -> tl_engine::Result<Option<Tensor>> {
    let ty = ret.get_type().map_err(|e| Error::new(ErrorCode::Hook, e.reason.clone()))?;
    if matches!(ty, ValueType::Undefined | ValueType::Null) {
        return Ok(None);
    }
    let inst = unsafe { ClassInstance::<NativeTensor>::from_napi_value(env.raw(), ret.raw()) }
        .map_err(|_| Error::new(ErrorCode::Hook, "a hook must return a Tensor or nothing"))?;
    let t = inst.tensor().map_err(|e| Error::new(ErrorCode::Disposed, e.reason.clone()))?.clone();
    Ok(Some(t))
}

/// Cancels a run between blocks.
#[napi]
pub struct NativeAbort {
    pub(crate) flag: Arc<AtomicBool>,
}

#[napi]
impl NativeAbort {
    #[napi(constructor)]
    pub fn new() -> Self {
        NativeAbort { flag: Arc::new(AtomicBool::new(false)) }
    }
    #[napi]
    pub fn abort(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

impl Default for NativeAbort {
    fn default() -> Self {
        Self::new()
    }
}

pub struct ForwardTask {
    model: Arc<HookedModel>,
    input: Tensor,
    args: ForwardArgs,
    flags: Vec<u8>,
    extras: RunExtras,
}

/// What a run reads besides its input: padding mask, KV cache, abort flag.
#[derive(Default, Clone)]
pub struct RunExtras {
    pub mask: Option<Tensor>,
    pub kv: Option<SharedKv>,
    pub abort: Option<Arc<AtomicBool>>,
}

impl RunExtras {
    pub fn new(mask: Option<&NativeTensor>, kv: Option<&NativeKvCache>, abort: Option<&NativeAbort>) -> Result<Self> {
        Ok(RunExtras {
            mask: match mask {
                Some(m) => Some(m.tensor()?.clone()),
                None => None,
            },
            kv: kv.map(|k| k.shared()),
            abort: abort.map(|a| a.flag.clone()),
        })
    }
}

fn run_forward<'a>(
    model: &HookedModel,
    input: &Tensor,
    args: &ForwardArgs,
    flags: &'a [u8],
    extras: &RunExtras,
    js: Option<&'a mut JsHook<'a>>,
) -> Result<NativeRun> {
    let mut opts = options(args)?;
    opts.abort = extras.abort.as_deref();
    opts.attention_mask = extras.mask.clone();
    let input = if opts.start_at_layer.is_some() { ForwardInput::Residual(input.clone()) } else { ForwardInput::Tokens(input.clone()) };
    let mut sink = PlanSink::new(flags);
    sink.js = js;
    let out = match &extras.kv {
        Some(kv) => {
            let mut guard = lock_kv(kv)?;
            model.forward_kv(input, &opts, Some(&mut guard), &mut sink).napi()?
        }
        None => model.forward(input, &opts, &mut sink).napi()?,
    };
    let cache = std::mem::take(&mut sink.cache);
    Ok(NativeRun::new(out, cache))
}

impl Task for ForwardTask {
    type Output = NativeRun;
    type JsValue = NativeRun;

    fn compute(&mut self) -> Result<NativeRun> {
        guard(|| run_forward(&self.model, &self.input, &self.args, &self.flags, &self.extras, None))
    }

    fn resolve(&mut self, _env: Env, out: NativeRun) -> Result<NativeRun> {
        Ok(out)
    }
}

/// A loaded model (held as [`ModelSlot`] describes) and its tokenizer.
#[napi]
pub struct NativeModel {
    slot: ModelSlot<HookedModel>,
    tokenizer: RefCell<Option<Arc<Tokenizer>>>,
}

impl NativeModel {
    pub(crate) fn new(env: &Env, model: HookedModel, tokenizer: Option<Tokenizer>) -> Result<Self> {
        let bytes = model.weights.nbytes() as i64;
        Ok(NativeModel { slot: ModelSlot::new(env, model, bytes)?, tokenizer: RefCell::new(tokenizer.map(Arc::new)) })
    }
    pub(crate) fn m(&self) -> Result<Arc<HookedModel>> {
        self.slot.get()
    }
    pub(crate) fn tok(&self) -> Result<Arc<Tokenizer>> {
        self.m()?;
        self.tokenizer
            .borrow()
            .clone()
            .ok_or_else(|| to_napi(Error::new(ErrorCode::Tokenizer, "this model has no tokenizer: pass token tensors instead of strings")))
    }
    /// The tokenizer, if the model has one.
    pub(crate) fn tok_opt(&self) -> Option<Arc<Tokenizer>> {
        self.tokenizer.borrow().clone()
    }
    /// Replaces the model (a flag, device or tokenizer change): runs in flight keep the old one.
    pub(crate) fn replace(&self, next: HookedModel) {
        self.slot.replace(next)
    }
}

#[napi]
impl NativeModel {
    /// TL's `cfg.to_dict()` as JSON.
    #[napi]
    pub fn config_json(&self) -> Result<String> {
        Ok(self.m()?.cfg().to_json())
    }

    /// Every hook point name, in firing order; the index is the hook id plans use.
    #[napi]
    pub fn hook_names(&self) -> Result<Vec<String>> {
        Ok(self.m()?.hooks.names().to_vec())
    }

    /// Turns one of TL's `use_*` flags on or off (`set_use_attn_result`, ...).
    #[napi]
    pub fn set_flag(&self, name: String, value: bool) -> Result<()> {
        guard(|| self.slot.edit(|m| m.set_flag(&name, value)))
    }

    /// TL's `model.to(device)`: moves the weights; runs and caches follow.
    #[napi]
    // In place, as torch's `Module.to`, under a `to_` name.
    #[allow(clippy::wrong_self_convention)]
    pub fn to_device(&self, device: String) -> Result<()> {
        guard(|| {
            let dev = tl_engine::device::parse(&device).napi()?;
            self.slot.edit(|m| m.to_device(&dev, &device))
        })
    }

    #[napi(getter)]
    pub fn device(&self) -> Result<String> {
        Ok(tl_engine::device::name(&self.m()?.device))
    }

    #[napi(ts_return_type = "Promise<NativeRun>")]
    pub fn forward(
        &self,
        input: &NativeTensor,
        args: ForwardArgs,
        flags: Vec<u8>,
        abort: Option<&NativeAbort>,
        attention_mask: Option<&NativeTensor>,
        kv_cache: Option<&NativeKvCache>,
    ) -> Result<AsyncTask<ForwardTask>> {
        guard(|| {
            options(&args)?;
            Ok(AsyncTask::new(ForwardTask {
                model: self.m()?,
                input: input.tensor()?.clone(),
                args,
                flags,
                extras: RunExtras::new(attention_mask, kv_cache, abort)?,
            }))
        })
    }

    /// The forward on the JS thread, calling `hook(id, tensor)` at every hook point flagged
    /// CALL_JS; the hook returns a replacement NativeTensor or undefined.
    #[napi]
    #[allow(clippy::too_many_arguments)] // mirrors the JS call
    pub fn forward_with_hooks(
        &self,
        env: Env,
        input: &NativeTensor,
        args: ForwardArgs,
        flags: Vec<u8>,
        hook: Function<FnArgs<(u32, NativeTensor)>, Unknown>,
        attention_mask: Option<&NativeTensor>,
        kv_cache: Option<&NativeKvCache>,
    ) -> Result<NativeRun> {
        guard(|| {
            let extras = RunExtras::new(attention_mask, kv_cache, None)?;
            let model = self.m()?;
            let input = input.tensor()?.clone();
            let mut call = js_caller(&env, &hook);
            run_forward(&model, &input, &args, &flags, &extras, Some(&mut call))
        })
    }

    /// TL's `HookedTransformerKeyValueCache.init_cache` for this model.
    #[napi]
    pub fn init_kv_cache(&self, batch_size: u32) -> Result<NativeKvCache> {
        guard(|| {
            let m = self.m()?;
            let c = m.cfg();
            let kv = KvCache::new(c.n_layers, batch_size as usize, c.attn_kv_heads(), c.d_head, m.dtype(), &m.device).napi()?;
            Ok(NativeKvCache::new(kv))
        })
    }

    /// TL's `utils.get_attention_mask` with this model's tokenizer (pad and BOS ids).
    #[napi]
    pub fn attention_mask(&self, env: Env, tokens: &NativeTensor, prepend_bos: bool, padding_left: bool) -> Result<NativeTensor> {
        guard(|| {
            let t = tokens.tensor()?;
            let t = if t.rank() == 1 { t.unsqueeze(0).napi()? } else { t.clone() };
            let mask = match &*self.tokenizer.borrow() {
                Some(tok) => {
                    let pad = tok.pad_token_id.map(|x| x as i64).unwrap_or(-1);
                    attention_mask_from_tokens(&t, pad, tok.bos_token_id.map(|x| x as i64), padding_left, prepend_bos).napi()?
                }
                None => Tensor::ones(t.dims2().napi()?, tl_engine::candle_core::DType::I64, t.device()).napi()?,
            };
            wrap(&env, mask)
        })
    }

    /// TL's state dict: keys in TL's order, tensors in TL's layouts.
    #[napi]
    pub fn state_dict(&self, env: Env) -> Result<Vec<NamedTensor>> {
        guard(|| {
            let m = self.m()?;
            let sd = state_dict(&m.arch, &m.weights).napi()?;
            sd.into_iter().map(|(name, t)| Ok(NamedTensor { name, tensor: wrap(&env, t)? })).collect()
        })
    }

    /// TL's weight processing on this model. `step == "model"`: `load_and_process_state_dict`
    /// of the given TL state dict (the model's own fills missing keys; `process_weights_` gives
    /// the whole of it) with the switches in `args`, swapped in as a new model (runs in flight
    /// keep the old one); returns nothing. Otherwise one of TL's methods (`fold_layer_norm`, ...)
    /// on the given state dict, returned; the model is unchanged.
    #[napi]
    pub fn process_weights(&self, env: Env, names: Vec<String>, tensors: Vec<&NativeTensor>, args: ProcessArgs) -> Result<Vec<NamedTensor>> {
        guard(|| {
            if names.len() != tensors.len() {
                return Err(crate::errors::invalid("process_weights: one name per tensor"));
            }
            let given = names.into_iter().zip(tensors).map(|(n, t)| Ok((n, t.tensor()?.clone()))).collect::<Result<Vec<_>>>()?;
            let m = self.m()?;
            if args.step != "model" {
                let step = steps::Step::from_name(&args.step, args.fold_biases, args.center_weights).napi()?;
                let sd = steps::process_state_dict(&m, &given, step).napi()?;
                return sd.into_iter().map(|(name, t)| Ok(NamedTensor { name, tensor: wrap(&env, t)? })).collect();
            }
            let p = steps::TlProcess {
                fold_ln: args.fold_ln,
                center_writing_weights: args.center_writing_weights,
                center_unembed: args.center_unembed,
                fold_value_biases: args.fold_value_biases,
                refactor_factored_attn_matrices: args.refactor_factored_attn_matrices,
            };
            let next = steps::load_and_process_model(&m, &given, p).napi()?;
            let bytes = next.weights.nbytes() as i64;
            self.slot.replace_sized(&env, next, bytes)?;
            Ok(vec![])
        })
    }

    // ---- tokenizer ----

    #[napi]
    pub fn has_tokenizer(&self) -> bool {
        self.tokenizer.borrow().is_some()
    }

    #[napi]
    pub fn to_tokens(&self, env: Env, texts: Vec<String>, prepend_bos: bool, padding_left: bool, max_len: Option<u32>) -> Result<NativeTensor> {
        guard(|| {
            let t = self.tok()?.to_tokens(&texts, prepend_bos, padding_left, max_len.map(|m| m as usize), &Device::Cpu).napi()?;
            wrap(&env, t)
        })
    }

    #[napi]
    pub fn encode(&self, text: String, add_special_tokens: bool) -> Result<Vec<u32>> {
        guard(|| self.tok()?.encode_one(&text, add_special_tokens).napi())
    }

    #[napi]
    pub fn decode(&self, ids: Vec<u32>, skip_special_tokens: bool) -> Result<String> {
        guard(|| self.tok()?.decode(&ids, skip_special_tokens).napi())
    }

    #[napi]
    pub fn token_to_id(&self, token: String) -> Result<Option<u32>> {
        Ok(self.tok()?.token_to_id(&token))
    }

    /// `{bos, eos, pad}` ids and strings, `prependsBos`, `paddingSide`.
    #[napi]
    pub fn tokenizer_info(&self) -> Result<String> {
        let t = self.tok()?;
        Ok(serde_json_lite(&[
            ("bosTokenId", t.bos_token_id.map(|v| v.to_string())),
            ("eosTokenId", t.eos_token_id.map(|v| v.to_string())),
            ("padTokenId", t.pad_token_id.map(|v| v.to_string())),
            ("prependsBos", Some(t.prepends_bos.to_string())),
            ("paddingSideLeft", Some(t.padding_side_left.to_string())),
            ("vocabSize", Some(t.vocab_size().to_string())),
        ]))
    }

    /// Frees the weights now, or, for runs still in flight (async, or a hook's own model on the
    /// JS thread), as soon as they finish: they hold their own reference and complete normally.
    /// Every later call is `TL_DISPOSED`.
    #[napi]
    pub fn dispose(&self, env: Env) -> Result<()> {
        *self.tokenizer.borrow_mut() = None;
        self.slot.dispose(&env)
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.slot.is_disposed()
    }

    // ---- set_tokenizer ----

    /// This model's tokenizer, to share with another model.
    #[napi]
    pub fn tokenizer_handle(&self) -> Result<crate::tokenizer::NativeTokenizer> {
        Ok(crate::tokenizer::NativeTokenizer { inner: self.tok()? })
    }

    /// TL's `set_tokenizer`: uses `tokenizer` from now on, padding on the given side, and
    /// updates the config as TL does (`tokenizer_prepends_bos`, unset vocab sizes).
    #[napi]
    pub fn set_tokenizer(&self, tokenizer: &crate::tokenizer::NativeTokenizer, padding_left: bool) -> Result<()> {
        guard(|| {
            let tok = if tokenizer.inner.padding_side_left == padding_left {
                tokenizer.inner.clone()
            } else {
                Arc::new(tokenizer.inner.with_padding_side(padding_left))
            };
            let mut next = HookedModel::clone(&*self.m()?);
            tok.apply_to_config(&mut next.arch.cfg);
            self.replace(next);
            *self.tokenizer.borrow_mut() = Some(tok);
            Ok(())
        })
    }
}

fn serde_json_lite(fields: &[(&str, Option<String>)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{}", v.as_deref().unwrap_or("null"))).collect();
    format!("{{{}}}", body.join(","))
}

/// `process_weights`' request: `step` is `"model"` or one of TL's method names.
#[napi(object)]
pub struct ProcessArgs {
    pub step: String,
    pub fold_ln: bool,
    pub center_writing_weights: bool,
    pub center_unembed: bool,
    pub fold_value_biases: bool,
    pub refactor_factored_attn_matrices: bool,
    /// `fold_layer_norm`'s `fold_biases` and `center_weights`.
    pub fold_biases: bool,
    pub center_weights: bool,
}

#[napi(object, object_from_js = false)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: NativeTensor,
}
