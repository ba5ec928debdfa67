/**
 * The parts of TL's `HookedTransformer.forward` that TL exposes as methods: `input_to_embed`,
 * `get_residual`, `get_pos_offset` and `loss_fn`, over the model's public API.
 */
import { TransformerLensError } from '../errors'
import { fireForwardHooks } from '../hooks/hook-point'
import { Tensor } from '../tensor'
import type { Device } from '../utils/devices'
import { boolArg, enumArg, intArg, invalidArg } from '../utils/args'
import { lmCrossEntropyLoss } from '../utils/lm-metrics'
import { withScope } from '../utils/scope'
import type { HookedTransformer, Input } from './hooked-transformer'
import { HookedTransformerKeyValueCache } from './kv-cache'
import { opt } from './options'

export interface InputToEmbedOptions {
  /** Prepend BOS to string input (default: cfg.default_prepend_bos). TL: `prepend_bos`. */
  prependBos?: boolean
  /** The side to pad a batch of strings on (default: the tokenizer's). TL: `padding_side`. */
  paddingSide?: 'left' | 'right'
  /** `[batch, pos]` 1 for tokens, 0 for padding. TL: `attention_mask`. */
  attentionMask?: Tensor | null
  /** A KV cache: positions continue after it and the mask is appended to it (unless frozen). TL: `past_kv_cache`. */
  pastKvCache?: HookedTransformerKeyValueCache | null
}

export interface GetResidualOptions {
  /** TL's `prepend_bos` (unused by the computation, as in TL). */
  prependBos?: boolean
  /** `[batch, past + pos]` mask: positions count unmasked tokens and padding gets no position embedding. */
  attentionMask?: Tensor | null
  /** `[batch, pos]` tokens (only their shape is read; default: the embeddings'). */
  tokens?: Tensor | null
  /** Return `[residual, shortformerPosEmbed]` (default true), else the residual alone. */
  returnShortformerPosEmbed?: boolean
  /** Accepted for TL's signature; the result stays where the weights are. */
  device?: string | null
}

function kvArg(kv: unknown): HookedTransformerKeyValueCache | null {
  if (kv === null || kv === undefined) return null
  if (!(kv instanceof HookedTransformerKeyValueCache)) throw invalidArg('pastKvCache', 'a HookedTransformerKeyValueCache', kv)
  return kv
}

/** TL's `get_pos_offset`: the number of cached positions (0 without a cache), checking the cache fits. */
export function getPosOffset(model: HookedTransformer, pastKvCache: HookedTransformerKeyValueCache | null | undefined, batchSize: number): number {
  const kv = kvArg(pastKvCache)
  intArg('batchSize', batchSize, { min: 0 })
  if (kv === null) return 0
  const keys = kv.entries[0].pastKeys
  const [b, ctx, heads, dh] = keys.shape
  keys.dispose()
  const c = model.cfg
  const kvHeads = c.n_key_value_heads as number | null | undefined
  const want = kvHeads === null || kvHeads === undefined || c.ungroup_grouped_query_attention ? c.n_heads : kvHeads
  if (b !== batchSize || heads !== want || dh !== c.d_head) {
    throw new TransformerLensError('TL_SHAPE_MISMATCH', `the KV cache holds [${b}, ${ctx}, ${heads}, ${dh}] keys; this model with batch ${batchSize} needs [${batchSize}, pos, ${want}, ${c.d_head}]`)
  }
  return ctx
}

/** TL's `loss_fn`: `lm_cross_entropy_loss` of the logits against the tokens (moved to the logits' device). */
export function lossFn(logits: Tensor, tokens: Tensor, options: { attentionMask?: Tensor | null; perToken?: boolean } = {}): Tensor {
  if (!(logits instanceof Tensor)) throw invalidArg('logits', 'a Tensor', logits)
  if (!(tokens instanceof Tensor)) throw invalidArg('tokens', 'a Tensor', tokens)
  const t = tokens.device === logits.device ? tokens : tokens.to(logits.device as Device)
  return lmCrossEntropyLoss(logits, t, { attentionMask: opt(options, 'attentionMask', null), perToken: boolArg('perToken', opt(options, 'perToken', false)) })
}

/** TL's `PosEmbed.forward`: the position embedding of each token, `[batch, pos, d_model]`. */
function posEmbed(model: HookedTransformer, batch: number, len: number, offset: number, mask: Tensor | null): Tensor {
  const nCtx = model.cfg.n_ctx
  return withScope((s) => {
    const wPos = s.keep(model.W_pos)
    if (mask === null) {
      if (offset + len > nCtx) throw new TransformerLensError('TL_SHAPE_MISMATCH', `positions ${offset}..${offset + len} exceed the model's n_ctx ${nCtx}`)
      const rows = s.keep(s.keep(wPos.get([offset, offset + len])).unsqueeze(0))
      return s.keep(rows.broadcastTo([batch, len, wPos.shape[1]])).clone()
    }
    // TL's get_offset_position_ids: cumsum(mask) - 1, floored at 0, from the offset on.
    const [b, total] = mask.shape
    if (mask.ndim !== 2 || b !== batch || total - offset !== len) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `attention mask [${mask.shape}] does not fit ${batch} rows of ${offset} cached + ${len} new positions`)
    }
    const m = Array.from(mask.toArray() as ArrayLike<number | bigint>, Number)
    const ids = new BigInt64Array(batch * len)
    const keep = new Float32Array(batch * len)
    for (let r = 0; r < batch; r++) {
      let sum = 0
      for (let j = 0; j < total; j++) {
        sum += m[r * total + j]
        if (j < offset) continue
        const id = Math.max(sum - 1, 0)
        if (id >= nCtx) throw new TransformerLensError('TL_SHAPE_MISMATCH', `position ${id} is past the model's n_ctx ${nCtx}`)
        ids[r * len + j - offset] = BigInt(id)
        keep[r * len + j - offset] = m[r * total + j] === 0 ? 0 : 1
      }
    }
    const rows = s.keep(wPos.indexSelect(0, s.keep(Tensor.from(ids, [batch * len]))))
    const pos = s.keep(rows.reshape([batch, len, wPos.shape[1]]))
    return pos.mul(s.keep(s.keep(Tensor.from(keep, [batch, len, 1])).to(pos.dtype)))
  })
}

/**
 * TL's `get_residual`: the first residual stream from token embeddings `[batch, pos, d_model]`:
 * plus the position embeddings (through `hook_pos_embed`'s hooks) for absolute positions;
 * as is for rotary. Returns `[residual, shortformerPosEmbed]` (null here) unless
 * `returnShortformerPosEmbed` is false.
 */
export function getResidual(model: HookedTransformer, embed: Tensor, posOffset: number, options: GetResidualOptions = {}): Tensor | [Tensor, Tensor | null] {
  if (!(embed instanceof Tensor) || embed.ndim !== 3) throw invalidArg('embed', 'a [batch, pos, d_model] Tensor', embed)
  intArg('posOffset', posOffset, { min: 0 })
  const mask = opt<Tensor | null>(options, 'attentionMask', null)
  if (mask !== null && !(mask instanceof Tensor)) throw invalidArg('attentionMask', 'a Tensor', mask)
  const tokens = opt<Tensor | null>(options, 'tokens', null)
  const [batch, len] = tokens instanceof Tensor ? [tokens.shape[0], tokens.shape[tokens.ndim - 1]] : embed.shape
  const kind = model.cfg.positional_embedding_type as string
  let residual: Tensor
  let shortformer: Tensor | null = null
  if (kind === 'standard' || kind === 'shortformer') {
    const point = model.hookDict.get('hook_pos_embed')
    const raw = posEmbed(model, batch, len, posOffset, mask)
    const pos = point ? fireForwardHooks(point, raw) : raw
    if (kind === 'standard') residual = embed.add(pos)
    else [residual, shortformer] = [embed, pos]
  } else if (kind === 'rotary' || kind === 'alibi') {
    residual = embed
  } else {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `Invalid positional_embedding_type passed in ${kind}`)
  }
  return opt(options, 'returnShortformerPosEmbed', true) ? [residual, shortformer] : residual
}

/**
 * TL's `input_to_embed`: `[residual, tokens, shortformerPosEmbed, attentionMask]` for text or
 * tokens, the first residual stream as `forward` computes it (`hook_embed` / `hook_pos_embed`
 * hooks fire). As TL's: an attention mask is computed only when the tokenizer pads on the left
 * (its own setting; `paddingSide` only tokenizes), a mask is given, or a KV cache is; with a
 * cache the mask returned is the cache's plus the new one, and the cache keeps it unless frozen.
 */
export async function inputToEmbed(model: HookedTransformer, input: Input, options: InputToEmbedOptions = {}): Promise<[Tensor, Tensor, Tensor | null, Tensor | null]> {
  const prependBos = opt<boolean | undefined>(options, 'prependBos', undefined)
  const kv = kvArg(opt<unknown>(options, 'pastKvCache', null))
  let tokens: Tensor
  if (typeof input === 'string' || Array.isArray(input)) {
    const paddingSide = opt<'left' | 'right' | undefined>(options, 'paddingSide', undefined)
    if (paddingSide !== undefined) enumArg('paddingSide', paddingSide, ['left', 'right'])
    tokens = model.toTokens(input, { prependBos, paddingSide })
  } else if (input instanceof Tensor) {
    tokens = input.ndim === 1 ? input.unsqueeze(0) : input
  } else {
    throw invalidArg('input', 'a string, an array of strings or a Tensor of tokens', input)
  }
  let mask = opt<Tensor | null>(options, 'attentionMask', null)
  if (mask !== null && !(mask instanceof Tensor)) throw invalidArg('attentionMask', 'a Tensor', mask)
  const tok = model.tokenizer
  let full: Tensor | null = null
  if ((tok !== null && tok.paddingSide === 'left') || mask !== null || kv !== null) {
    if (mask === null) {
      if (tok === null) throw new TransformerLensError('TL_TOKENIZER', 'Cannot compute attention mask without a tokenizer.')
      mask = tok.attentionMask(tokens, boolArg('prependBos', prependBos ?? model.cfg.default_prepend_bos), tok.paddingSide === 'left')
    }
    if (mask.shape.join() !== tokens.shape.join()) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `Attention mask shape [${mask.shape}] does not match tokens shape [${tokens.shape}]`)
    }
    full = mask
    if (kv !== null) {
      const past = kv.previousAttentionMask
      full = Tensor.cat([past, mask.to(past.dtype)], 1)
      past.dispose()
    }
  }
  // The forward appends `mask` to the cache (unless frozen) and reads positions from it.
  const residual = (await model.forward(tokens, { stopAtLayer: 0, attentionMask: mask ?? undefined, pastKvCache: kv ?? undefined })) as Tensor
  return [residual, tokens, null, full]
}
