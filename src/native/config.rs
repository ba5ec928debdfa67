//! TL's `get_pretrained_model_config` without weights.

use napi_derive::napi;
use tl_engine::load::config::{pretrained_config, ConfigOptions};
use tl_engine::tensor::ops;

use crate::errors::{guard, IntoNapi};

#[napi(object)]
pub struct ConfigArgs {
    pub official_name: String,
    /// The folder holding config.json; none for the names TL hard-codes.
    pub dir: Option<String>,
    pub fold_ln: bool,
    pub dtype: String,
    pub device: String,
    pub default_prepend_bos: Option<bool>,
    pub first_n_layers: Option<u32>,
    pub n_devices: u32,
    pub checkpoint: Option<Checkpoint>,
}

/// A training checkpoint: TL's `checkpoint_label_type`, `checkpoint_index`, `checkpoint_value`.
#[napi(object)]
pub struct Checkpoint {
    pub label_type: String,
    pub index: i64,
    pub value: i64,
}

impl Checkpoint {
    pub fn engine(c: &Option<Checkpoint>) -> Option<(String, i64, i64)> {
        c.as_ref().map(|c| (c.label_type.clone(), c.index, c.value))
    }
}

/// TL's config (`cfg.to_dict()`) as JSON.
#[napi]
pub fn pretrained_config_json(args: ConfigArgs) -> napi::Result<String> {
    guard(|| {
        let o = ConfigOptions {
            official_name: args.official_name,
            dtype: ops::parse_dtype(&args.dtype).napi()?,
            device_label: args.device,
            default_prepend_bos: args.default_prepend_bos,
            first_n_layers: args.first_n_layers.map(|n| n as usize),
            fold_ln: args.fold_ln,
            n_devices: args.n_devices as usize,
            checkpoint: Checkpoint::engine(&args.checkpoint),
        };
        let dir = args.dir.as_deref().map(std::path::Path::new);
        // T5 (TL's HookedEncoderDecoder) has its own config conversion.
        if let Some(d) = dir {
            if let Some(cfg) = tl_engine::t5::load::pretrained_config(d, &o.official_name, o.dtype, &o.device_label).napi()? {
                return Ok(cfg.to_json());
            }
        }
        let cfg = if tl_engine::load::tl_native::is_tl_native(&o.official_name) {
            tl_engine::load::tl_native::pretrained_config(dir, &o).napi()?
        } else if let Some(cfg) = tl_engine::bert::load::encoder_config(dir, &o).napi()? {
            cfg // TL's HookedEncoder (BERT)
        } else {
            pretrained_config(dir, &o).napi()?.1
        };
        Ok(cfg.to_json())
    })
}
