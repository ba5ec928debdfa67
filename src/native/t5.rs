//! `NativeEncoderDecoder`: a loaded T5 (TL's `HookedEncoderDecoder`), its runs (with the same
//! hook plans as `NativeModel`: `PlanSink`, JS hooks on the JS thread) and its generation.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use tl_engine::candle_core::{DType, Device, Tensor};
use tl_engine::generate::sampling::SampleOptions;
use tl_engine::load::tokenizer::Tokenizer;
use tl_engine::model::transformer::ForwardOutput;
use tl_engine::t5::generate::{generate, T5GenerateOptions};
use tl_engine::t5::load::load_from_dir;
use tl_engine::t5::model::T5Model;
use tl_engine::tensor::ops;
use tl_engine::{Error, ErrorCode};

use crate::errors::{guard, to_napi, IntoNapi};
use crate::generate::{parse_seed, SampleArgs};
use crate::model::{js_caller, NamedTensor, NativeAbort};
use crate::run::{JsHook, NativeRun, PlanSink};
use crate::slot::ModelSlot;
use crate::tensor::{wrap, NativeTensor};

#[napi(object)]
pub struct T5LoadArgs {
    pub dir: String,
    pub official_name: String,
    pub dtype: String,
    pub device: Option<String>,
}

pub struct T5LoadTask {
    args: T5LoadArgs,
}

impl Task for T5LoadTask {
    type Output = (T5Model, Option<Tokenizer>);
    type JsValue = NativeEncoderDecoder;

    fn compute(&mut self) -> Result<Self::Output> {
        guard(|| {
            let a = &self.args;
            let dtype = ops::parse_dtype(&a.dtype).napi()?;
            if !dtype.is_float() {
                return Err(to_napi(Error::dtype(format!("a model dtype must be a float type, got '{}'", a.dtype))));
            }
            let label = a.device.clone().unwrap_or_else(|| "cpu".into());
            let device = tl_engine::device::parse(&label).napi()?;
            let l = load_from_dir(std::path::Path::new(&a.dir), &a.official_name, dtype, &device, &label).napi()?;
            Ok((l.model, l.tokenizer))
        })
    }

    fn resolve(&mut self, env: Env, (model, tok): Self::Output) -> Result<NativeEncoderDecoder> {
        let bytes = model.nbytes() as i64;
        Ok(NativeEncoderDecoder { slot: ModelSlot::new(&env, model, bytes)?, tokenizer: tok.map(Arc::new) })
    }
}

#[napi(ts_return_type = "Promise<NativeEncoderDecoder>")]
pub fn load_encoder_decoder(args: T5LoadArgs) -> Result<AsyncTask<T5LoadTask>> {
    Ok(AsyncTask::new(T5LoadTask { args }))
}

/// One forward's inputs.
struct T5Input {
    tokens: Tensor,
    decoder_input: Tensor,
    mask: Option<Tensor>,
    want_logits: bool,
}

fn run_t5<'a>(model: &T5Model, i: &T5Input, flags: &'a [u8], abort: Option<&AtomicBool>, js: Option<&'a mut JsHook<'a>>) -> Result<NativeRun> {
    let mut sink = PlanSink::new(flags);
    sink.js = js;
    let logits = model.forward(&i.tokens, &i.decoder_input, i.mask.as_ref(), i.want_logits, abort, &mut sink).napi()?;
    let cache = std::mem::take(&mut sink.cache);
    Ok(NativeRun::new(ForwardOutput { logits, ..Default::default() }, cache))
}

pub struct T5ForwardTask {
    model: Arc<T5Model>,
    input: T5Input,
    flags: Vec<u8>,
    abort: Option<Arc<AtomicBool>>,
}

impl Task for T5ForwardTask {
    type Output = NativeRun;
    type JsValue = NativeRun;
    fn compute(&mut self) -> Result<NativeRun> {
        guard(|| run_t5(&self.model, &self.input, &self.flags, self.abort.as_deref(), None))
    }
    fn resolve(&mut self, _env: Env, out: NativeRun) -> Result<NativeRun> {
        Ok(out)
    }
}

#[napi(object)]
pub struct T5GenerateArgs {
    pub max_new_tokens: u32,
    pub stop_tokens: Vec<i64>,
    pub eos_pad: i64,
    pub start_token: i64,
    pub sample: SampleArgs,
}

fn generate_options(a: &T5GenerateArgs) -> Result<T5GenerateOptions> {
    let s = &a.sample;
    Ok(T5GenerateOptions {
        max_new_tokens: a.max_new_tokens as usize,
        stop_tokens: a.stop_tokens.clone(),
        eos_pad: a.eos_pad,
        do_sample: s.do_sample,
        sample: SampleOptions { temperature: s.temperature, top_k: s.top_k.map(|k| k as usize), top_p: s.top_p, freq_penalty: s.freq_penalty },
        seed: parse_seed(&s.seed)?,
        start_token: a.start_token,
    })
}

pub struct T5GenerateTask {
    model: Arc<T5Model>,
    tokens: Tensor,
    mask: Option<Tensor>,
    opts: T5GenerateOptions,
    flags: Vec<u8>,
    abort: Option<Arc<AtomicBool>>,
}

impl Task for T5GenerateTask {
    type Output = Tensor;
    type JsValue = NativeTensor;
    fn compute(&mut self) -> Result<Tensor> {
        guard(|| {
            let mut sink = PlanSink::new(&self.flags);
            generate(&self.model, &self.tokens, self.mask.as_ref(), &self.opts, self.abort.as_deref(), &mut sink).napi()
        })
    }
    fn resolve(&mut self, env: Env, out: Tensor) -> Result<NativeTensor> {
        wrap(&env, out)
    }
}

#[napi]
pub struct NativeEncoderDecoder {
    slot: ModelSlot<T5Model>,
    tokenizer: Option<Arc<Tokenizer>>,
}

fn opt_tensor(t: Option<&NativeTensor>) -> Result<Option<Tensor>> {
    t.map(|t| t.tensor().cloned()).transpose()
}

impl NativeEncoderDecoder {
    fn m(&self) -> Result<Arc<T5Model>> {
        self.slot.get()
    }
    fn tok(&self) -> Result<Arc<Tokenizer>> {
        self.tokenizer.clone().ok_or_else(|| to_napi(Error::new(ErrorCode::Tokenizer, "this model has no tokenizer: pass token tensors instead of strings")))
    }
    fn input(&self, tokens: &NativeTensor, decoder_input: &NativeTensor, mask: Option<&NativeTensor>, want_logits: bool) -> Result<T5Input> {
        Ok(T5Input { tokens: tokens.tensor()?.clone(), decoder_input: decoder_input.tensor()?.clone(), mask: opt_tensor(mask)?, want_logits })
    }
}

#[napi]
impl NativeEncoderDecoder {
    #[napi]
    pub fn config_json(&self) -> Result<String> {
        Ok(self.m()?.cfg.to_json())
    }

    #[napi]
    pub fn hook_names(&self) -> Result<Vec<String>> {
        Ok(self.m()?.hooks.names().to_vec())
    }

    #[napi]
    pub fn has_tokenizer(&self) -> bool {
        self.tokenizer.is_some()
    }

    /// `[pad, eos]` token ids of the tokenizer (-1 where it has none).
    #[napi]
    pub fn special_ids(&self) -> Result<Vec<i64>> {
        let t = self.tok()?;
        Ok(vec![t.pad_token_id.map_or(-1, |x| x as i64), t.eos_token_id.map_or(-1, |x| x as i64)])
    }

    /// TL's `to_tokens`: `[tokens, attention_mask]`, both `[batch, pos]` int64, padded on the
    /// right with the pad token, truncated (special tokens kept) to `max_len`.
    #[napi]
    pub fn to_tokens(&self, env: Env, texts: Vec<String>, max_len: Option<u32>) -> Result<Vec<NativeTensor>> {
        guard(|| {
            let tok = self.tok()?;
            let rows = texts.iter().map(|t| tok.encode_truncated(t, max_len.map(|m| m as usize))).collect::<tl_engine::Result<Vec<_>>>().napi()?;
            let w = rows.iter().map(Vec::len).max().unwrap_or(0);
            if w == 0 {
                return Err(to_napi(Error::invalid("the input tokenizes to zero tokens")));
            }
            let pad = tok.pad_token_id.unwrap_or(0) as i64;
            let (mut ids, mut mask) = (Vec::with_capacity(rows.len() * w), Vec::with_capacity(rows.len() * w));
            for r in &rows {
                ids.extend(r.iter().map(|&x| x as i64).chain(std::iter::repeat_n(pad, w - r.len())));
                mask.extend(std::iter::repeat_n(1i64, r.len()).chain(std::iter::repeat_n(0, w - r.len())));
            }
            let shape = (rows.len(), w);
            Ok(vec![
                wrap(&env, Tensor::from_vec(ids, shape, &Device::Cpu).napi()?)?,
                wrap(&env, Tensor::from_vec(mask, shape, &Device::Cpu).napi()?)?,
            ])
        })
    }

    #[napi]
    pub fn decode(&self, ids: Vec<u32>, skip_special: bool) -> Result<String> {
        guard(|| self.tok()?.decode(&ids, skip_special).napi())
    }

    #[napi(ts_return_type = "Promise<NativeRun>")]
    pub fn forward(
        &self,
        tokens: &NativeTensor,
        decoder_input: &NativeTensor,
        attention_mask: Option<&NativeTensor>,
        want_logits: bool,
        flags: Vec<u8>,
        abort: Option<&NativeAbort>,
    ) -> Result<AsyncTask<T5ForwardTask>> {
        guard(|| {
            let input = self.input(tokens, decoder_input, attention_mask, want_logits)?;
            Ok(AsyncTask::new(T5ForwardTask { model: self.m()?, input, flags, abort: abort.map(|a| a.flag.clone()) }))
        })
    }

    /// The forward on the JS thread, calling `hook(id, tensor)` where `flags` say CALL_JS.
    #[napi]
    #[allow(clippy::too_many_arguments)] // mirrors the JS call
    pub fn forward_with_hooks(
        &self,
        env: Env,
        tokens: &NativeTensor,
        decoder_input: &NativeTensor,
        attention_mask: Option<&NativeTensor>,
        want_logits: bool,
        flags: Vec<u8>,
        hook: Function<FnArgs<(u32, NativeTensor)>, Unknown>,
    ) -> Result<NativeRun> {
        guard(|| {
            let input = self.input(tokens, decoder_input, attention_mask, want_logits)?;
            let model = self.m()?;
            let mut call = js_caller(&env, &hook);
            run_t5(&model, &input, &flags, None, Some(&mut call))
        })
    }

    /// TL's `generate` (decoder loop in Rust): `[batch, 1 + new]`, the start token first.
    #[napi(ts_return_type = "Promise<NativeTensor>")]
    pub fn generate(&self, tokens: &NativeTensor, attention_mask: Option<&NativeTensor>, args: T5GenerateArgs, flags: Vec<u8>, abort: Option<&NativeAbort>) -> Result<AsyncTask<T5GenerateTask>> {
        guard(|| {
            Ok(AsyncTask::new(T5GenerateTask {
                model: self.m()?,
                tokens: tokens.tensor()?.clone(),
                mask: opt_tensor(attention_mask)?,
                opts: generate_options(&args)?,
                flags,
                abort: abort.map(|a| a.flag.clone()),
            }))
        })
    }

    /// `generate` on the JS thread, calling JS hooks at every step.
    #[napi]
    pub fn generate_with_hooks(
        &self,
        env: Env,
        tokens: &NativeTensor,
        attention_mask: Option<&NativeTensor>,
        args: T5GenerateArgs,
        flags: Vec<u8>,
        hook: Function<FnArgs<(u32, NativeTensor)>, Unknown>,
    ) -> Result<NativeTensor> {
        guard(|| {
            let model = self.m()?;
            let mut call = js_caller(&env, &hook);
            let mut sink = PlanSink::new(&flags);
            sink.js = Some(&mut call);
            let mask = opt_tensor(attention_mask)?;
            let out = generate(&model, tokens.tensor()?, mask.as_ref(), &generate_options(&args)?, None, &mut sink).napi()?;
            wrap(&env, out)
        })
    }

    /// TL's `state_dict()`.
    #[napi]
    pub fn state_dict(&self, env: Env) -> Result<Vec<NamedTensor>> {
        guard(|| {
            let m = self.m()?;
            let sd = tl_engine::t5::weights::state_dict(&m.cfg, &m.weights).napi()?;
            sd.into_iter().map(|(name, t)| Ok(NamedTensor { name, tensor: wrap(&env, t)? })).collect()
        })
    }

    /// Sets one of the hook flags TL's `T5Block` reads (`model.cfg.use_attn_in = True`, ...).
    #[napi]
    pub fn set_flag(&self, name: String, value: bool) -> Result<()> {
        guard(|| self.slot.edit(|m| m.set_flag(&name, value)))
    }

    #[napi]
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

    /// The model dtype's name.
    #[napi(getter)]
    pub fn dtype(&self) -> Result<String> {
        Ok(match self.m()?.dtype() {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F64 => "float64",
            _ => "float32",
        }
        .into())
    }

    #[napi]
    pub fn dispose(&self, env: Env) -> Result<()> {
        self.slot.dispose(&env)
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.slot.is_disposed()
    }
}
