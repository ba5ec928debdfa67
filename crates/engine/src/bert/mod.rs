//! TL's `HookedEncoder` (BERT): its config (TL's `BertForMaskedLM` branch of
//! `convert_hf_model_config`), `convert_bert_weights`, the hook points of `BertEmbed`,
//! `BertBlock`, `BertMLMHead`, `BertPooler` and `BertNSPHead` in TL's firing order, and the
//! forward with TL's padding-mask semantics. Kept apart from the decoder (`crate::model`): the
//! block is post-norm and the model has heads of its own; the shared kernels and norms are
//! reused.

pub mod config;
pub mod forward;
pub mod hooks;
pub mod load;
pub mod state_dict;
pub mod tokens;
pub mod weights;

use candle_core::{DType, Device};

use crate::error::Result;
use crate::model::config::Config;
use crate::model::hooks::HookTable;

pub use hooks::{EncBlockHook, EncTopHook, EncoderHooks};
pub use weights::EncoderWeights;

/// HF architectures whose checkpoints are BERT encoders: TL loads `BertForMaskedLM` (reading
/// `BertForPreTraining` weights); a bare `BertModel` (sentence-transformers' checkpoints) has the
/// trunk and pooler only.
pub const ENCODER_ARCHITECTURES: &[&str] = &["BertForMaskedLM", "BertForPreTraining", "BertModel", "BertForNextSentencePrediction"];

pub fn is_encoder_architecture(a: &str) -> bool {
    ENCODER_ARCHITECTURES.contains(&a)
}

/// A loaded encoder: TL's config, the weights in the compute layout, the hook table.
#[derive(Clone)]
pub struct HookedEncoder {
    pub cfg: Config,
    pub weights: EncoderWeights,
    pub hooks: EncoderHooks,
    pub device: Device,
}

impl HookedEncoder {
    pub fn new(cfg: Config, weights: EncoderWeights, device: Device) -> Self {
        let hooks = EncoderHooks::new(cfg.n_layers);
        HookedEncoder { cfg, weights, hooks, device }
    }

    pub fn table(&self) -> &HookTable {
        self.hooks.table()
    }

    pub fn dtype(&self) -> DType {
        self.weights.w_e.dtype()
    }

    /// Sets one of the hook flags TL's `BertBlock` reads (`model.cfg.use_attn_result = True`, ...):
    /// `use_attn_result`, `use_split_qkv_input`, `use_hook_mlp_in`. The hook table is the same
    /// with the flags on or off (TL's module tree has those points either way).
    pub fn set_flag(&mut self, name: &str, value: bool) -> Result<()> {
        self.cfg.set_hook_flag(name, value, &["use_attn_result", "use_split_qkv_input", "use_hook_mlp_in"])
    }

    /// The weights and config moved to `device` (TL's `model.to`).
    pub fn to_device(&self, device: &Device, label: &str) -> Result<HookedEncoder> {
        let mut cfg = self.cfg.clone();
        cfg.device = Some(crate::device::label(label));
        Ok(HookedEncoder { cfg, weights: self.weights.to_device(device)?, hooks: self.hooks.clone(), device: device.clone() })
    }
}

#[cfg(test)]
mod tests;
