//! The encoder's hook points: TL's names, in TL's firing order, with dense ids.
//!
//! `hook_q_input`/`hook_k_input`/`hook_v_input`, `attn.hook_result` and `hook_mlp_in` are always
//! in the table (TL's module tree has them) but fire only under their `use_*` flags
//! (`HookedEncoder::set_flag`), as in TL.

use crate::model::hooks::HookTable;

/// Hook points outside the blocks, in firing order: the embedding (before the blocks), the MLM
/// head (after them), the pooler and NSP head (TL's `BertNextSentencePrediction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum EncTopHook {
    Embed,
    PosEmbed,
    TokenTypeEmbed,
    EmbedLnScale,
    EmbedLnNormalized,
    FullEmbed,
    MlmLnScale,
    MlmLnNormalized,
    PoolerOut,
    NspOut,
}

const TOP: [(EncTopHook, &str); 10] = [
    (EncTopHook::Embed, "embed.hook_embed"),
    (EncTopHook::PosEmbed, "embed.hook_pos_embed"),
    (EncTopHook::TokenTypeEmbed, "embed.hook_token_type_embed"),
    (EncTopHook::EmbedLnScale, "embed.ln.hook_scale"),
    (EncTopHook::EmbedLnNormalized, "embed.ln.hook_normalized"),
    (EncTopHook::FullEmbed, "hook_full_embed"),
    (EncTopHook::MlmLnScale, "mlm_head.ln.hook_scale"),
    (EncTopHook::MlmLnNormalized, "mlm_head.ln.hook_normalized"),
    (EncTopHook::PoolerOut, "pooler.hook_pooler_out"),
    (EncTopHook::NspOut, "nsp_head.hook_nsp_out"),
];

/// How many of the top hooks come before the blocks.
const TOP_BEFORE_BLOCKS: usize = 6;

/// `BertBlock`'s hook points, in firing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum EncBlockHook {
    ResidPre,
    QInput,
    KInput,
    VInput,
    Q,
    K,
    V,
    AttnScores,
    Pattern,
    Z,
    Result,
    AttnOut,
    ResidMid,
    MlpIn,
    Ln1Scale,
    Ln1Normalized,
    MlpPre,
    MlpPost,
    MlpOut,
    ResidPost,
    Ln2Scale,
    Ln2Normalized,
    NormalizedResidPost,
}

const BLOCK: [&str; 23] = [
    "hook_resid_pre",
    "hook_q_input",
    "hook_k_input",
    "hook_v_input",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_attn_scores",
    "attn.hook_pattern",
    "attn.hook_z",
    "attn.hook_result",
    "hook_attn_out",
    "hook_resid_mid",
    "hook_mlp_in",
    "ln1.hook_scale",
    "ln1.hook_normalized",
    "mlp.hook_pre",
    "mlp.hook_post",
    "hook_mlp_out",
    "hook_resid_post",
    "ln2.hook_scale",
    "ln2.hook_normalized",
    "hook_normalized_resid_post",
];

/// Names and ids of every hook point of an encoder with `n_layers` blocks.
#[derive(Debug, Clone)]
pub struct EncoderHooks {
    table: HookTable,
    top: [usize; 10],
    n_layers: usize,
}

impl EncoderHooks {
    pub fn new(n_layers: usize) -> Self {
        let mut names: Vec<String> = TOP[..TOP_BEFORE_BLOCKS].iter().map(|(_, n)| n.to_string()).collect();
        for l in 0..n_layers {
            names.extend(BLOCK.iter().map(|s| format!("blocks.{l}.{s}")));
        }
        names.extend(TOP[TOP_BEFORE_BLOCKS..].iter().map(|(_, n)| n.to_string()));
        let mut top = [0; 10];
        for (i, (h, _)) in TOP.iter().enumerate() {
            top[*h as usize] = if i < TOP_BEFORE_BLOCKS { i } else { i + n_layers * BLOCK.len() };
        }
        EncoderHooks { table: HookTable::from_names(names), top, n_layers }
    }

    pub fn table(&self) -> &HookTable {
        &self.table
    }

    pub fn top(&self, h: EncTopHook) -> Option<usize> {
        Some(self.top[h as usize])
    }

    pub fn block(&self, layer: usize, h: EncBlockHook) -> Option<usize> {
        (layer < self.n_layers).then_some(TOP_BEFORE_BLOCKS + layer * BLOCK.len() + h as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_hooks() {
        let h = EncoderHooks::new(2);
        let t = h.table();
        assert_eq!(t.len(), 10 + 2 * 23);
        assert_eq!(t.name(h.top(EncTopHook::FullEmbed).unwrap()), "hook_full_embed");
        assert_eq!(t.name(h.block(1, EncBlockHook::Pattern).unwrap()), "blocks.1.attn.hook_pattern");
        assert_eq!(t.name(h.block(0, EncBlockHook::NormalizedResidPost).unwrap()), "blocks.0.hook_normalized_resid_post");
        assert_eq!(t.name(h.top(EncTopHook::MlmLnScale).unwrap()), "mlm_head.ln.hook_scale");
        assert_eq!(t.name(h.top(EncTopHook::NspOut).unwrap()), "nsp_head.hook_nsp_out");
        assert_eq!(h.block(2, EncBlockHook::Q), None);
    }
}
