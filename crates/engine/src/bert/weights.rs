//! The encoder's weights in the compute layout (`x @ W` with `W: [in, out]`), read from HF's
//! BERT tensors as TL's `convert_bert_weights` maps them. Every tensor is declared with the
//! shape the config implies and checked against the file headers before any is read
//! (`load::spec`).

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::load::safetensors::WeightFile;
use crate::load::spec::{Checked, TensorSpec};
use crate::model::config::Config;
use crate::model::weights::NormWeights;

/// One `BertBlock`.
#[derive(Clone)]
pub struct EncoderBlock {
    /// Q, K and V columns side by side: `[d_model, 3 * n_heads * d_head]`.
    pub w_qkv: Tensor,
    pub b_qkv: Tensor,
    /// `[n_heads * d_head, d_model]`.
    pub w_o: Tensor,
    pub b_o: Tensor,
    pub ln1: NormWeights,
    pub w_in: Tensor,
    pub b_in: Tensor,
    pub w_out: Tensor,
    pub b_out: Tensor,
    pub ln2: NormWeights,
}

/// `BertMLMHead` and the unembedding.
#[derive(Clone)]
pub struct MlmHead {
    pub w: Tensor,
    pub b: Tensor,
    pub ln: NormWeights,
    /// `[d_model, d_vocab]` (HF's decoder, or the tied word embeddings transposed).
    pub w_u: Tensor,
    pub b_u: Tensor,
}

/// A dense layer `x @ w + b` (the pooler, the NSP head).
#[derive(Clone)]
pub struct Dense {
    pub w: Tensor,
    pub b: Tensor,
}

#[derive(Clone)]
pub struct EncoderWeights {
    pub w_e: Tensor,
    pub w_pos: Tensor,
    pub w_token_type: Tensor,
    pub embed_ln: NormWeights,
    pub blocks: Vec<EncoderBlock>,
    /// Absent from checkpoints without heads (a bare `BertModel`).
    pub mlm: Option<MlmHead>,
    pub pooler: Option<Dense>,
    pub nsp: Option<Dense>,
}

/// Module prefixes of BERT checkpoints: `BertForPreTraining`/`BertForMaskedLM` keep the trunk
/// under `bert.` and the heads under `cls.`; a bare `BertModel` has no prefix.
pub const PREFIXES: &[&str] = &["bert.", ""];

/// The LayerNorm parameter names of a checkpoint: `weight`/`bias`, or the `gamma`/`beta` of
/// BERT's original TF-converted files (which transformers renames as it loads).
#[derive(Clone, Copy)]
pub struct LnNames {
    pub w: &'static str,
    pub b: &'static str,
}

impl LnNames {
    pub fn of(wf: &WeightFile) -> LnNames {
        let old = PREFIXES.iter().any(|p| wf.has(&format!("{p}embeddings.LayerNorm.gamma")));
        if old {
            LnNames { w: "gamma", b: "beta" }
        } else {
            LnNames { w: "weight", b: "bias" }
        }
    }
}

fn ln_specs(base: &str, d: usize, n: LnNames, required: bool) -> [TensorSpec; 2] {
    let mk = |s: &str| if required { TensorSpec::new(format!("{base}.{s}"), &[d]) } else { TensorSpec::optional(format!("{base}.{s}"), &[d]) };
    [mk(n.w), mk(n.b)]
}

fn dense_specs(base: &str, out: usize, inp: usize, required: bool) -> [TensorSpec; 2] {
    if required {
        [TensorSpec::new(format!("{base}.weight"), &[out, inp]), TensorSpec::new(format!("{base}.bias"), &[out])]
    } else {
        [TensorSpec::optional(format!("{base}.weight"), &[out, inp]), TensorSpec::optional(format!("{base}.bias"), &[out])]
    }
}

/// The tensors outside the blocks: embeddings required, heads and pooler optional (checked as
/// groups in [`convert`]).
pub fn tensors(cfg: &Config, types: usize, n: LnNames) -> Vec<TensorSpec> {
    let (d, v) = (cfg.d_model, cfg.d_vocab);
    let mut out = vec![
        TensorSpec::new("embeddings.word_embeddings.weight", &[v, d]),
        TensorSpec::new("embeddings.position_embeddings.weight", &[cfg.n_ctx, d]),
        TensorSpec::new("embeddings.token_type_embeddings.weight", &[types, d]),
    ];
    out.extend(ln_specs("embeddings.LayerNorm", d, n, true));
    out.extend(dense_specs("pooler.dense", d, d, false));
    out.extend(dense_specs("cls.predictions.transform.dense", d, d, false));
    out.extend(ln_specs("cls.predictions.transform.LayerNorm", d, n, false));
    out.push(TensorSpec::optional("cls.predictions.decoder.weight", &[v, d]));
    out.push(TensorSpec::optional("cls.predictions.bias", &[v]));
    out.push(TensorSpec::optional("cls.predictions.decoder.bias", &[v]));
    out.extend(dense_specs("cls.seq_relationship", 2, d, false));
    out
}

pub fn layer_tensors(cfg: &Config, l: usize, n: LnNames) -> Vec<TensorSpec> {
    let (d, hd, m) = (cfg.d_model, cfg.n_heads * cfg.d_head, cfg.d_mlp());
    let p = format!("encoder.layer.{l}");
    let mut out = Vec::new();
    for x in ["query", "key", "value"] {
        out.extend(dense_specs(&format!("{p}.attention.self.{x}"), hd, d, true));
    }
    out.extend(dense_specs(&format!("{p}.attention.output.dense"), d, hd, true));
    out.extend(ln_specs(&format!("{p}.attention.output.LayerNorm"), d, n, true));
    out.extend(dense_specs(&format!("{p}.intermediate.dense"), m, d, true));
    out.extend(dense_specs(&format!("{p}.output.dense"), d, m, true));
    out.extend(ln_specs(&format!("{p}.output.LayerNorm"), d, n, true));
    out
}

fn ln(c: &Checked, base: &str, n: LnNames) -> Result<NormWeights> {
    Ok(NormWeights { w: Some(c.get(&format!("{base}.{}", n.w))?), b: Some(c.get(&format!("{base}.{}", n.b))?) })
}

fn dense(c: &Checked, base: &str) -> Result<Dense> {
    Ok(Dense { w: c.get_t(&format!("{base}.weight"))?, b: c.get(&format!("{base}.bias"))? })
}

/// Present as a whole, or absent as a whole: a head with some of its tensors is a broken file.
fn group(c: &Checked, names: &[String]) -> Result<bool> {
    let have: Vec<&String> = names.iter().filter(|n| c.has(n)).collect();
    if have.is_empty() {
        return Ok(false);
    }
    match names.iter().find(|n| !c.has(n)) {
        Some(missing) => Err(Error::missing_weight(missing)),
        None => Ok(true),
    }
}

fn block(c: &Checked, l: usize, n: LnNames) -> Result<EncoderBlock> {
    let p = format!("encoder.layer.{l}");
    let [q, k, v] = ["query", "key", "value"].map(|x| dense(c, &format!("{p}.attention.self.{x}")));
    let (q, k, v) = (q?, k?, v?);
    let o = dense(c, &format!("{p}.attention.output.dense"))?;
    let i = dense(c, &format!("{p}.intermediate.dense"))?;
    let out = dense(c, &format!("{p}.output.dense"))?;
    Ok(EncoderBlock {
        w_qkv: Tensor::cat(&[&q.w, &k.w, &v.w], 1)?,
        b_qkv: Tensor::cat(&[&q.b, &k.b, &v.b], 0)?,
        w_o: o.w,
        b_o: o.b,
        ln1: ln(c, &format!("{p}.attention.output.LayerNorm"), n)?,
        w_in: i.w,
        b_in: i.b,
        w_out: out.w,
        b_out: out.b,
        ln2: ln(c, &format!("{p}.output.LayerNorm"), n)?,
    })
}

/// TL's `convert_bert_weights` into the compute layout.
pub fn convert(cfg: &Config, c: &Checked, n: LnNames) -> Result<EncoderWeights> {
    let w_e = c.get("embeddings.word_embeddings.weight")?;
    let blocks = (0..cfg.n_layers).map(|l| block(c, l, n)).collect::<Result<Vec<_>>>()?;
    let pooler = if group(c, &["pooler.dense.weight".into(), "pooler.dense.bias".into()])? { Some(dense(c, "pooler.dense")?) } else { None };
    let nsp = if group(c, &["cls.seq_relationship.weight".into(), "cls.seq_relationship.bias".into()])? { Some(dense(c, "cls.seq_relationship")?) } else { None };
    let t = "cls.predictions.transform";
    let mlm_names = [format!("{t}.dense.weight"), format!("{t}.dense.bias"), format!("{t}.LayerNorm.{}", n.w), format!("{t}.LayerNorm.{}", n.b)];
    let mlm = if group(c, &mlm_names)? {
        let bias_name = ["cls.predictions.bias", "cls.predictions.decoder.bias"].into_iter().find(|b| c.has(b)).ok_or_else(|| Error::missing_weight("cls.predictions.bias"))?;
        // BERT ties the decoder to the word embeddings: files saved by transformers leave it out.
        let w_u = if c.has("cls.predictions.decoder.weight") { c.get_t("cls.predictions.decoder.weight")? } else { w_e.t()?.contiguous()? };
        let head = dense(c, &format!("{t}.dense"))?;
        Some(MlmHead { w: head.w, b: head.b, ln: ln(c, &format!("{t}.LayerNorm"), n)?, w_u, b_u: c.get(bias_name)? })
    } else {
        None
    };
    Ok(EncoderWeights {
        w_pos: c.get("embeddings.position_embeddings.weight")?,
        w_token_type: c.get("embeddings.token_type_embeddings.weight")?,
        embed_ln: ln(c, "embeddings.LayerNorm", n)?,
        w_e,
        blocks,
        mlm,
        pooler,
        nsp,
    })
}

fn norm_to(n: &NormWeights, dev: &Device) -> Result<NormWeights> {
    let mv = |t: &Option<Tensor>| t.as_ref().map(|t| crate::device::to(t, dev)).transpose();
    Ok(NormWeights { w: mv(&n.w)?, b: mv(&n.b)? })
}

impl EncoderWeights {
    pub fn to_device(&self, dev: &Device) -> Result<EncoderWeights> {
        let mv = |t: &Tensor| crate::device::to(t, dev);
        let dense = |d: &Dense| -> Result<Dense> { Ok(Dense { w: mv(&d.w)?, b: mv(&d.b)? }) };
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(EncoderBlock {
                    w_qkv: mv(&b.w_qkv)?,
                    b_qkv: mv(&b.b_qkv)?,
                    w_o: mv(&b.w_o)?,
                    b_o: mv(&b.b_o)?,
                    ln1: norm_to(&b.ln1, dev)?,
                    w_in: mv(&b.w_in)?,
                    b_in: mv(&b.b_in)?,
                    w_out: mv(&b.w_out)?,
                    b_out: mv(&b.b_out)?,
                    ln2: norm_to(&b.ln2, dev)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mlm = match &self.mlm {
            Some(m) => Some(MlmHead { w: mv(&m.w)?, b: mv(&m.b)?, ln: norm_to(&m.ln, dev)?, w_u: mv(&m.w_u)?, b_u: mv(&m.b_u)? }),
            None => None,
        };
        Ok(EncoderWeights {
            w_e: mv(&self.w_e)?,
            w_pos: mv(&self.w_pos)?,
            w_token_type: mv(&self.w_token_type)?,
            embed_ln: norm_to(&self.embed_ln, dev)?,
            blocks,
            mlm,
            pooler: self.pooler.as_ref().map(dense).transpose()?,
            nsp: self.nsp.as_ref().map(dense).transpose()?,
        })
    }

    /// Bytes held by the weights (for V8's external-memory accounting).
    pub fn nbytes(&self) -> usize {
        let t = |x: &Tensor| x.elem_count() * x.dtype().size_in_bytes();
        let n = |x: &NormWeights| x.w.as_ref().map_or(0, t) + x.b.as_ref().map_or(0, t);
        let mut s = t(&self.w_e) + t(&self.w_pos) + t(&self.w_token_type) + n(&self.embed_ln);
        for b in &self.blocks {
            s += t(&b.w_qkv) + t(&b.b_qkv) + t(&b.w_o) + t(&b.b_o) + n(&b.ln1) + t(&b.w_in) + t(&b.b_in) + t(&b.w_out) + t(&b.b_out) + n(&b.ln2);
        }
        if let Some(m) = &self.mlm {
            s += t(&m.w) + t(&m.b) + n(&m.ln) + t(&m.w_u) + t(&m.b_u);
        }
        for d in [&self.pooler, &self.nsp].into_iter().flatten() {
            s += t(&d.w) + t(&d.b);
        }
        s
    }
}
