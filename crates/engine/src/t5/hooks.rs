//! The hook points of TL's `HookedEncoderDecoder`: TL's names, dense ids, in firing order.
//!
//! Every HookPoint TL's module tree has is listed (also those that never fire in TL 2.16.1:
//! `attn.rel_pos_hook`, which `compute_relative_attention_bias` never calls), so `hook_dict`
//! matches TL's; the points of the `use_*` flags fire when the flag is on
//! (`T5Model::set_flag`). The cache order is the firing order, as TL's.

use crate::model::hooks::HookTable;

/// The hook points of one T5 block, in firing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum T5Hook {
    ResidPre,
    AttnIn,
    QInput,
    KInput,
    VInput,
    Ln1Scale,
    Ln1Normalized,
    Q,
    K,
    V,
    AttnScores,
    Pattern,
    Z,
    Result,
    RelPosHook,
    AttnOut,
    ResidMid,
    CrossAttnIn,
    Ln2Scale,
    Ln2Normalized,
    CrossQ,
    CrossK,
    CrossV,
    CrossAttnScores,
    CrossPattern,
    CrossZ,
    CrossResult,
    CrossAttnOut,
    ResidMidCross,
    MlpIn,
    Ln3Scale,
    Ln3Normalized,
    MlpPre,
    MlpPost,
    MlpOut,
    ResidPost,
}

pub const N_T5_HOOKS: usize = 36;

const ALL: [T5Hook; N_T5_HOOKS] = {
    use T5Hook::*;
    [
        ResidPre, AttnIn, QInput, KInput, VInput, Ln1Scale, Ln1Normalized, Q, K, V, AttnScores, Pattern, Z, Result, RelPosHook, AttnOut,
        ResidMid, CrossAttnIn, Ln2Scale, Ln2Normalized, CrossQ, CrossK, CrossV, CrossAttnScores, CrossPattern, CrossZ, CrossResult,
        CrossAttnOut, ResidMidCross, MlpIn, Ln3Scale, Ln3Normalized, MlpPre, MlpPost, MlpOut, ResidPost,
    ]
};

impl T5Hook {
    pub fn suffix(self) -> &'static str {
        use T5Hook::*;
        match self {
            ResidPre => "hook_resid_pre",
            AttnIn => "hook_attn_in",
            QInput => "hook_q_input",
            KInput => "hook_k_input",
            VInput => "hook_v_input",
            Ln1Scale => "ln1.hook_scale",
            Ln1Normalized => "ln1.hook_normalized",
            Q => "attn.hook_q",
            K => "attn.hook_k",
            V => "attn.hook_v",
            AttnScores => "attn.hook_attn_scores",
            Pattern => "attn.hook_pattern",
            Z => "attn.hook_z",
            Result => "attn.hook_result",
            RelPosHook => "attn.rel_pos_hook",
            AttnOut => "hook_attn_out",
            ResidMid => "hook_resid_mid",
            CrossAttnIn => "hook_cross_attn_in",
            Ln2Scale => "ln2.hook_scale",
            Ln2Normalized => "ln2.hook_normalized",
            CrossQ => "cross_attn.hook_q",
            CrossK => "cross_attn.hook_k",
            CrossV => "cross_attn.hook_v",
            CrossAttnScores => "cross_attn.hook_attn_scores",
            CrossPattern => "cross_attn.hook_pattern",
            CrossZ => "cross_attn.hook_z",
            CrossResult => "cross_attn.hook_result",
            CrossAttnOut => "hook_cross_attn_out",
            ResidMidCross => "hook_resid_mid_cross",
            MlpIn => "hook_mlp_in",
            Ln3Scale => "ln3.hook_scale",
            Ln3Normalized => "ln3.hook_normalized",
            MlpPre => "mlp.hook_pre",
            MlpPost => "mlp.hook_post",
            MlpOut => "hook_mlp_out",
            ResidPost => "hook_resid_post",
        }
    }

    /// Whether TL's T5Block has this point: only block 0 has `rel_pos_hook`; only decoder blocks
    /// have the cross-attention and ln3 points. In an encoder block the MLP's norm is `ln2`.
    fn exists(self, decoder: bool, layer: usize) -> bool {
        use T5Hook::*;
        match self {
            RelPosHook => layer == 0,
            CrossAttnIn | CrossQ | CrossK | CrossV | CrossAttnScores | CrossPattern | CrossZ | CrossResult | CrossAttnOut
            | ResidMidCross | Ln3Scale | Ln3Normalized => decoder,
            _ => true,
        }
    }
}

/// The norm hooks around the MLP: `ln3` in a decoder block, `ln2` in an encoder block.
pub fn mlp_norm_hooks(decoder: bool) -> [T5Hook; 2] {
    if decoder {
        [T5Hook::Ln3Scale, T5Hook::Ln3Normalized]
    } else {
        [T5Hook::Ln2Scale, T5Hook::Ln2Normalized]
    }
}

/// Ids of the hook points of a T5 model; `table` is the name table the taps report with.
#[derive(Debug, Clone)]
pub struct T5Hooks {
    pub table: HookTable,
    pub embed: usize,
    pub encoder_final: [usize; 2],
    pub decoder_final: [usize; 2],
    encoder: Vec<[Option<usize>; N_T5_HOOKS]>,
    decoder: Vec<[Option<usize>; N_T5_HOOKS]>,
}

impl T5Hooks {
    pub fn new(n_layers: usize) -> Self {
        let mut names: Vec<String> = Vec::new();
        let mut push = |n: String| {
            names.push(n);
            names.len() - 1
        };
        let embed = push("hook_embed".into());
        let stack = |prefix: &str, decoder: bool, push: &mut dyn FnMut(String) -> usize| {
            (0..n_layers)
                .map(|l| {
                    let mut ids = [None; N_T5_HOOKS];
                    for h in ALL {
                        if h.exists(decoder, l) {
                            ids[h as usize] = Some(push(format!("{prefix}.{l}.{}", h.suffix())));
                        }
                    }
                    ids
                })
                .collect::<Vec<_>>()
        };
        let encoder = stack("encoder", false, &mut push);
        let encoder_final = [push("encoder_final_ln.hook_scale".into()), push("encoder_final_ln.hook_normalized".into())];
        let decoder = stack("decoder", true, &mut push);
        let decoder_final = [push("decoder_final_ln.hook_scale".into()), push("decoder_final_ln.hook_normalized".into())];
        T5Hooks { table: HookTable::from_names(names), embed, encoder_final, decoder_final, encoder, decoder }
    }

    pub fn names(&self) -> &[String] {
        self.table.names()
    }

    /// The id of hook `h` of block `layer` of the encoder or the decoder.
    pub fn id(&self, decoder: bool, layer: usize, h: T5Hook) -> Option<usize> {
        let blocks = if decoder { &self.decoder } else { &self.encoder };
        blocks.get(layer).and_then(|b| b[h as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_counts() {
        let h = T5Hooks::new(2);
        // TL's hook_dict of a 2+2-layer T5: 123 points.
        assert_eq!(h.names().len(), 123);
        assert_eq!(h.names()[0], "hook_embed");
        assert_eq!(h.table.name(h.id(true, 1, T5Hook::ResidMidCross).unwrap()), "decoder.1.hook_resid_mid_cross");
        assert!(h.id(false, 0, T5Hook::CrossQ).is_none());
        assert!(h.id(false, 1, T5Hook::RelPosHook).is_none());
        assert_eq!(h.table.name(h.id(false, 0, T5Hook::Ln2Scale).unwrap()), "encoder.0.ln2.hook_scale");
    }
}
