//! `NativeEncoder`: a loaded BERT encoder (TL's `HookedEncoder`), its runs and tokenizer. Runs
//! use the decoder's hook plans and `NativeRun` (the output is handed out as `takeLogits`).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::bert::forward::{self, EncoderInput, Head};
use tl_engine::bert::load::{load_encoder, EncoderLoadOptions, LoadedEncoder};
use tl_engine::bert::{state_dict, tokens, HookedEncoder};
use tl_engine::candle_core::{Device, Tensor};
use tl_engine::load::tokenizer::Tokenizer;
use tl_engine::model::hooks::Taps;
use tl_engine::model::transformer::ForwardOutput;
use tl_engine::tensor::ops;
use tl_engine::{Error, ErrorCode};

use crate::errors::{guard, invalid, to_napi, IntoNapi};
use crate::model::{js_caller, NamedTensor, NativeAbort};
use crate::run::{JsHook, NativeRun, PlanSink};
use crate::slot::ModelSlot;
use crate::tensor::{wrap, NativeTensor};

#[napi(object)]
pub struct EncoderLoadArgs {
    pub dir: String,
    pub official_name: String,
    pub dtype: String,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: Option<String>,
}

pub struct EncoderLoadTask {
    dir: String,
    opts: EncoderLoadOptions,
}

impl Task for EncoderLoadTask {
    type Output = LoadedEncoder;
    type JsValue = NativeEncoder;

    fn compute(&mut self) -> Result<LoadedEncoder> {
        guard(|| load_encoder(std::path::Path::new(&self.dir), &self.opts).napi())
    }

    fn resolve(&mut self, env: Env, l: LoadedEncoder) -> Result<NativeEncoder> {
        let bytes = l.model.weights.nbytes() as i64;
        Ok(NativeEncoder {
            slot: ModelSlot::new(&env, l.model, bytes)?,
            tokenizer: l.tokenizer.map(Arc::new),
            mask_token_id: l.mask_token_id,
            pad_token_id: l.pad_token_id,
        })
    }
}

#[napi(ts_return_type = "Promise<NativeEncoder>")]
pub fn load_encoder_model(args: EncoderLoadArgs) -> Result<AsyncTask<EncoderLoadTask>> {
    guard(|| {
        let dtype = ops::parse_dtype(&args.dtype).napi()?;
        if !dtype.is_float() {
            return Err(to_napi(Error::dtype(format!("a model dtype must be a float type, got '{}'", args.dtype))));
        }
        let device_label = args.device.clone().unwrap_or_else(|| "cpu".into());
        let device = tl_engine::device::parse(&device_label).napi()?;
        let opts = EncoderLoadOptions { official_name: args.official_name, dtype, device, device_label };
        Ok(AsyncTask::new(EncoderLoadTask { dir: args.dir, opts }))
    })
}

fn head_arg(head: &str) -> Result<Head> {
    match head {
        "mlm" => Ok(Head::Mlm),
        "nsp" => Ok(Head::Nsp),
        "trunk" => Ok(Head::Trunk),
        other => Err(invalid(format!("head must be 'mlm', 'nsp' or 'trunk', got '{other}'"))),
    }
}

/// One run's inputs, owned (for pool tasks).
pub struct EncoderRunArgs {
    tokens: Tensor,
    token_type_ids: Option<Tensor>,
    mask: Option<Tensor>,
    head: Head,
    flags: Vec<u8>,
    abort: Option<Arc<AtomicBool>>,
}

fn opt_tensor(t: Option<&NativeTensor>) -> Result<Option<Tensor>> {
    t.map(|t| t.tensor().cloned()).transpose()
}

fn run<'a>(m: &HookedEncoder, a: &'a EncoderRunArgs, js: Option<&'a mut JsHook<'a>>) -> Result<NativeRun> {
    let dev = &m.device;
    let to = |t: &Tensor| tl_engine::device::to(t, dev).napi();
    let (tokens, tt, mask) = (to(&a.tokens)?, a.token_type_ids.as_ref().map(to).transpose()?, a.mask.as_ref().map(to).transpose()?);
    let input = EncoderInput { tokens: &tokens, token_type_ids: tt.as_ref(), mask: mask.as_ref(), abort: a.abort.as_deref() };
    let mut sink = PlanSink::new(&a.flags);
    sink.js = js;
    let out = forward::forward(m, &input, a.head, &mut Taps::new(m.table(), &mut sink)).napi()?;
    let cache = std::mem::take(&mut sink.cache);
    Ok(NativeRun::new(ForwardOutput { logits: Some(out), ..Default::default() }, cache))
}

pub struct EncoderForwardTask {
    model: Arc<HookedEncoder>,
    args: EncoderRunArgs,
}

impl Task for EncoderForwardTask {
    type Output = NativeRun;
    type JsValue = NativeRun;

    fn compute(&mut self) -> Result<NativeRun> {
        guard(|| run(&self.model, &self.args, None))
    }

    fn resolve(&mut self, _env: Env, out: NativeRun) -> Result<NativeRun> {
        Ok(out)
    }
}

/// A loaded encoder. As `NativeModel`: runs hold their own `Arc` of the weights, so `dispose()`
/// (even from a hook) lets runs in flight finish.
#[napi]
pub struct NativeEncoder {
    slot: ModelSlot<HookedEncoder>,
    tokenizer: Option<Arc<Tokenizer>>,
    mask_token_id: Option<u32>,
    pad_token_id: Option<u32>,
}

impl NativeEncoder {
    fn m(&self) -> Result<Arc<HookedEncoder>> {
        self.slot.get()
    }
    fn tok(&self) -> Result<Arc<Tokenizer>> {
        self.m()?;
        self.tokenizer.clone().ok_or_else(|| to_napi(Error::new(ErrorCode::Tokenizer, "this model has no tokenizer: pass token tensors instead of strings")))
    }
    fn args(&self, tokens: &NativeTensor, token_type_ids: Option<&NativeTensor>, mask: Option<&NativeTensor>, head: String, flags: Vec<u8>) -> Result<EncoderRunArgs> {
        Ok(EncoderRunArgs {
            tokens: tokens.tensor()?.clone(),
            token_type_ids: opt_tensor(token_type_ids)?,
            mask: opt_tensor(mask)?,
            head: head_arg(&head)?,
            flags,
            abort: None,
        })
    }
}

#[napi]
impl NativeEncoder {
    /// TL's `cfg.to_dict()` as JSON.
    #[napi]
    pub fn config_json(&self) -> Result<String> {
        Ok(self.m()?.cfg.to_json())
    }

    /// Every hook point name, in firing order; the index is the hook id plans use.
    #[napi]
    pub fn hook_names(&self) -> Result<Vec<String>> {
        Ok(self.m()?.table().names().to_vec())
    }

    /// Which parts the checkpoint has: `mlm` (MLM head + unembed), `pooler`, `nsp`.
    #[napi]
    pub fn heads(&self) -> Result<Vec<String>> {
        let m = self.m()?;
        let w = &m.weights;
        Ok([("mlm", w.mlm.is_some()), ("pooler", w.pooler.is_some()), ("nsp", w.nsp.is_some())].into_iter().filter(|(_, h)| *h).map(|(n, _)| n.to_string()).collect())
    }

    /// A run on the libuv pool: `head` is 'mlm' (logits), 'nsp' (`[batch, 2]`) or 'trunk'
    /// (`encoder_output`); the output comes back as the run's logits.
    #[napi(ts_return_type = "Promise<NativeRun>")]
    #[allow(clippy::too_many_arguments)] // mirrors the JS call
    pub fn forward(
        &self,
        tokens: &NativeTensor,
        token_type_ids: Option<&NativeTensor>,
        attention_mask: Option<&NativeTensor>,
        head: String,
        flags: Vec<u8>,
        abort: Option<&NativeAbort>,
    ) -> Result<AsyncTask<EncoderForwardTask>> {
        guard(|| {
            let mut args = self.args(tokens, token_type_ids, attention_mask, head, flags)?;
            args.abort = abort.map(|a| a.flag.clone());
            Ok(AsyncTask::new(EncoderForwardTask { model: self.m()?, args }))
        })
    }

    /// The run on the JS thread, calling `hook(id, tensor)` at every hook point flagged CALL_JS.
    #[napi]
    #[allow(clippy::too_many_arguments)] // mirrors the JS call
    pub fn forward_with_hooks(
        &self,
        env: Env,
        tokens: &NativeTensor,
        token_type_ids: Option<&NativeTensor>,
        attention_mask: Option<&NativeTensor>,
        head: String,
        flags: Vec<u8>,
        hook: Function<FnArgs<(u32, NativeTensor)>, Unknown>,
    ) -> Result<NativeRun> {
        guard(|| {
            let args = self.args(tokens, token_type_ids, attention_mask, head, flags)?;
            let model = self.m()?;
            let mut call = js_caller(&env, &hook);
            run(&model, &args, Some(&mut call))
        })
    }

    /// TL's `model.pooler(resid)`: `[batch, d_model]`.
    #[napi]
    pub fn pooler(&self, env: Env, resid: &NativeTensor) -> Result<NativeTensor> {
        guard(|| wrap(&env, forward::pooler(&*self.m()?, resid.tensor()?).napi()?))
    }

    /// TL's `model.nsp_head(pooled)`: `[batch, 2]`.
    #[napi]
    pub fn nsp_head(&self, env: Env, pooled: &NativeTensor) -> Result<NativeTensor> {
        guard(|| wrap(&env, forward::nsp_head(&*self.m()?, pooled.tensor()?).napi()?))
    }

    /// TL's state dict: keys in TL's order, tensors in TL's layouts.
    #[napi]
    pub fn state_dict(&self, env: Env) -> Result<Vec<NamedTensor>> {
        guard(|| {
            let sd = state_dict::state_dict(&*self.m()?).napi()?;
            sd.into_iter().map(|(name, t)| Ok(NamedTensor { name, tensor: wrap(&env, t)? })).collect()
        })
    }

    /// Sets one of the hook flags TL's `BertBlock` reads (`model.cfg.use_attn_result = True`).
    #[napi]
    pub fn set_flag(&self, name: String, value: bool) -> Result<()> {
        guard(|| self.slot.edit(|m| m.set_flag(&name, value)))
    }

    /// TL's `model.to(device)`: moves the weights; later runs follow.
    #[napi]
    #[allow(clippy::wrong_self_convention)]
    pub fn to_device(&self, device: String) -> Result<()> {
        guard(|| {
            let dev = tl_engine::device::parse(&device).napi()?;
            let next = self.m()?.to_device(&dev, &device).napi()?;
            self.slot.replace(next);
            Ok(())
        })
    }

    #[napi(getter)]
    pub fn device(&self) -> Result<String> {
        Ok(tl_engine::device::name(&self.m()?.device))
    }

    // ---- tokenizer ----

    #[napi]
    pub fn has_tokenizer(&self) -> bool {
        self.tokenizer.is_some()
    }

    /// TL's `to_tokens` (or, with `pair`, `BertNextSentencePrediction.to_tokens`):
    /// `[tokens, tokenTypeIds, attentionMask]`.
    #[napi]
    pub fn to_tokens(&self, env: Env, texts: Vec<String>, pair: bool, max_len: Option<u32>) -> Result<Vec<NativeTensor>> {
        guard(|| {
            let out = tokens::to_tokens(&*self.tok()?, self.pad_token_id, &texts, pair, max_len.map(|m| m as usize), &Device::Cpu).napi()?;
            out.into_iter().map(|t| wrap(&env, t)).collect()
        })
    }

    #[napi]
    pub fn decode(&self, ids: Vec<u32>, skip_special_tokens: bool) -> Result<String> {
        guard(|| self.tok()?.decode(&ids, skip_special_tokens).napi())
    }

    /// transformers' `tokenizer.mask_token_id`.
    #[napi]
    pub fn mask_token_id(&self) -> Result<Option<u32>> {
        self.tok()?;
        Ok(self.mask_token_id)
    }

    /// The argmax token at every `[MASK]` of `tokens` (TL's predictions, before decoding).
    #[napi]
    pub fn mask_predictions(&self, logits: &NativeTensor, tokens: &NativeTensor) -> Result<Vec<u32>> {
        guard(|| {
            let id = self.mask_token_id.ok_or_else(|| to_napi(Error::new(ErrorCode::Tokenizer, "the tokenizer has no mask token")))?;
            tokens::mask_argmax(logits.tensor()?, tokens.tensor()?, id).napi()
        })
    }

    /// Frees the weights (runs in flight finish with their own reference); later calls are
    /// `TL_DISPOSED`.
    #[napi]
    pub fn dispose(&self, env: Env) -> Result<()> {
        self.slot.dispose(&env)
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.slot.is_disposed()
    }
}
