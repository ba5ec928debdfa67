/**
 * `HookedTransformer(cfg)`: TL's config object (snake_case `HookedTransformerConfig` fields) →
 * the JSON the engine builds a randomly initialised model from. TL's defaults and derived
 * fields (`n_heads` from `d_head`, `d_mlp = 4 d_model`, `initializer_range`, `d_vocab_out`, ...)
 * are filled in Rust, as TL's `__post_init__` does; here we check types and TL's `-1` markers.
 */
import { TransformerLensError } from '../errors'
import { describe, enumArg, intArg } from '../utils/args'
import type { DType } from '../tensor'
import type { TokenizerView } from './tokenizer'

export interface FromConfigOptions {
  /** Seed of the initialisation (default: `cfg.seed`, else 0). Our stream, TL's distributions. */
  seed?: number
  /** Weight dtype (default `cfg.dtype`, else float32). */
  dtype?: DType
  /** `cpu` (default), `cuda`, `cuda:N`. */
  device?: string
  /** A tokenizer to use (another model's `tokenizer`); `d_vocab: -1` then takes its size. */
  tokenizer?: TokenizerView
  /** The side `toTokens` pads on with that tokenizer (default 'right'). */
  defaultPaddingSide?: 'left' | 'right'
}

const INIT_MODES = ['gpt2', 'xavier_uniform', 'xavier_normal', 'kaiming_uniform', 'kaiming_normal', 'muP'] as const

/** TL's `dtype` spellings (`torch.float32` as well as `float32`). */
function dtypeName(v: unknown): DType {
  const s = typeof v === 'string' ? v.replace(/^torch\./, '') : v
  const map: Record<string, DType> = { float32: 'float32', float: 'float32', float16: 'float16', half: 'float16', bfloat16: 'bfloat16', float64: 'float64', double: 'float64' }
  const d = typeof s === 'string' ? map[s] : undefined
  if (d === undefined) throw new TransformerLensError('TL_DTYPE', `cfg.dtype must be a float dtype such as 'float32', got ${describe(v)}`)
  return d
}

/** The config as the engine reads it, plus the seed and dtype to build with. */
export function prepareConfig(cfg: unknown, options: FromConfigOptions, vocabOfTokenizer?: number): { json: string; seed: string; dtype: DType } {
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `a config must be an object of TL's HookedTransformerConfig fields, got ${describe(cfg)}`)
  }
  const c: Record<string, unknown> = { ...(cfg as Record<string, unknown>) }
  for (const k of ['n_layers', 'd_model', 'n_ctx', 'd_head']) {
    if (c[k] === undefined) throw new TransformerLensError('TL_INVALID_ARGUMENT', `the config needs ${k}`)
    intArg(`cfg.${k}`, c[k], { min: 1 })
  }
  // TL's "derive me" markers.
  if (c.n_heads === -1 || c.n_heads === undefined) delete c.n_heads
  else intArg('cfg.n_heads', c.n_heads, { min: 1 })
  if (c.d_vocab === -1 || c.d_vocab === undefined) {
    if (vocabOfTokenizer === undefined) {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', 'the config needs d_vocab (or pass a tokenizer, whose vocabulary size it then takes)')
    }
    c.d_vocab = vocabOfTokenizer
  }
  intArg('cfg.d_vocab', c.d_vocab, { min: 1 })
  if (c.initializer_range === undefined) c.initializer_range = -1
  if (c.init_mode !== undefined) enumArg('cfg.init_mode', c.init_mode, INIT_MODES)
  if (c.attn_only === undefined) c.attn_only = false
  if (!c.attn_only && (c.act_fn === undefined || c.act_fn === null)) {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', 'act_fn must be specified for non-attn-only models')
  }
  const dtype = options.dtype ?? (c.dtype === undefined ? 'float32' : dtypeName(c.dtype))
  delete c.dtype
  delete c.device
  delete c.n_params
  const seedValue = options.seed ?? (typeof c.seed === 'number' ? c.seed : 0)
  const seed = intArg('seed', seedValue, { min: 0 })
  return { json: JSON.stringify(c), seed: String(seed), dtype }
}
