import { TransformerLensError } from '../errors'
import type { Device } from '../utils/devices'
import type { Tensor } from '../tensor'
import type { DownloadProgress } from './hub-client'
import type { HookedTransformerKeyValueCache } from './kv-cache'

/** Reads an option by its camelCase name or TL's snake_case name. */
export function opt<T>(o: object | undefined, camel: string, fallback: T): T {
  if (!o) return fallback
  const r = o as Record<string, unknown>
  if (r[camel] !== undefined) return r[camel] as T
  const snake = camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)
  if (r[snake] !== undefined) return r[snake] as T
  return fallback
}

/** `defaultPaddingSide` checked as TL does: whether to pad on the left. */
export function paddingLeftArg(options: { defaultPaddingSide?: 'left' | 'right' }): boolean {
  const side = opt<unknown>(options, 'defaultPaddingSide', 'right')
  if (side !== 'left' && side !== 'right') throw new TransformerLensError('TL_INVALID_ARGUMENT', `padding_side must be 'right' or 'left', got ${String(side)}`)
  return side === 'left'
}

/** The model dtypes `fromPretrained` takes, and TL's short names for them (`DTYPE_FROM_STRING`). */
const MODEL_DTYPES: Record<string, ModelDtype> = {
  float32: 'float32', fp32: 'float32', float64: 'float64', float16: 'float16', fp16: 'float16', bfloat16: 'bfloat16', bf16: 'bfloat16',
}
export type ModelDtype = 'float32' | 'float64' | 'float16' | 'bfloat16'

/** The options every `fromPretrained` reads for its dtype, as TL's keyword arguments. */
export interface DtypeOptions {
  /** 'float32' (default), 'float64', 'float16', 'bfloat16' (or TL's 'fp32', 'fp16', 'bf16'). */
  dtype?: string
  /** TL/transformers' `torch_dtype`: when given, it wins over `dtype` (as TL's `from_pretrained`). */
  torchDtype?: string
  /** TL refuses quantized loading ("Quantization not supported"): so does this library. */
  loadIn8bit?: boolean
  loadIn4bit?: boolean
}

/** The model dtype of `fromPretrained` options: `torchDtype` over `dtype` (TL), 'float32' by default. */
export function modelDtypeArg(options: DtypeOptions): ModelDtype {
  const o = options as Record<string, unknown>
  for (const [q, snake] of [['loadIn8bit', 'load_in_8bit'], ['loadIn4bit', 'load_in_4bit']]) {
    if (o[q] || o[snake]) throw new TransformerLensError('TL_UNSUPPORTED', `Quantization not supported (${q})`)
  }
  const name = opt<unknown>(options, 'torchDtype', undefined) !== undefined ? 'torchDtype' : 'dtype'
  const given = opt<unknown>(options, name, 'float32')
  const dtype = typeof given === 'string' ? MODEL_DTYPES[given.replace(/^torch\./, '')] : undefined
  if (dtype === undefined) {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `${name} must be one of ${Object.keys(MODEL_DTYPES).map((d) => `'${d}'`).join(', ')}, got ${typeof given === 'string' ? `'${given}'` : String(given)}`)
  }
  return dtype
}

export type ReturnType = 'logits' | 'loss' | 'both' | null

export interface ForwardOptions {
  /** 'logits' (default), 'loss', 'both' or null. TL: `return_type`. */
  returnType?: ReturnType
  /** Per-token loss `[batch, pos - 1]` instead of the mean. TL: `loss_per_token`. */
  lossPerToken?: boolean
  /** Prepend BOS to string input (default: cfg.default_prepend_bos). TL: `prepend_bos`. */
  prependBos?: boolean
  /** Padding side for a batch of strings. TL: `padding_side`. */
  paddingSide?: 'left' | 'right'
  /** Run blocks from this layer on; the input is then a residual stream. TL: `start_at_layer`. */
  startAtLayer?: number
  /** Stop before this block and return the residual stream. TL: `stop_at_layer`. */
  stopAtLayer?: number
  /** Tokens for the loss when the input is a residual stream (with startAtLayer). */
  tokens?: unknown
  /**
   * `[batch, pos]` 1 for real tokens, 0 for padding. Computed from the tokens (TL's
   * `get_attention_mask`) when padding is on the left or a KV cache is given. TL: `attention_mask`.
   */
  attentionMask?: Tensor
  /** Keys and values of earlier positions; this run appends to it unless frozen. TL: `past_kv_cache`. */
  pastKvCache?: HookedTransformerKeyValueCache
  /** Cancels the run between blocks. */
  signal?: AbortSignal
}

export interface LoadOptions extends DtypeOptions {
  foldLn?: boolean
  centerWritingWeights?: boolean
  centerUnembed?: boolean
  foldValueBiases?: boolean
  defaultPrependBos?: boolean
  /** TL's `default_padding_side`: the side `toTokens` pads on (default 'right', as TL). */
  defaultPaddingSide?: 'left' | 'right'
  firstNLayers?: number
  /** Branch, tag or commit on the hub and in the HF cache (default 'main'). */
  revision?: string
  /** Overrides the HF hub cache folder (default `HF_HUB_CACHE`, else `HF_HOME/hub`). TL: `cache_dir`. */
  cacheDir?: string
  /** Never download; use the HF cache only (as `HF_HUB_OFFLINE=1`). TL/transformers: `local_files_only`. */
  localFilesOnly?: boolean
  /** Hub to download from (default `HF_ENDPOINT`, else `https://huggingface.co`). */
  endpoint?: string
  /** Hub access token for gated/private repos (default `HF_TOKEN`, else `HF_HOME/token`); `false` sends none. */
  token?: string | false
  /** Called while a file downloads (about every 100 ms, and when it completes). */
  onProgress?: (p: DownloadProgress) => void
  /** Cancels a download in progress (`TL_ABORTED`). */
  signal?: AbortSignal
  /** Download timeout in ms: per metadata request, and the longest silence while a file streams (default 10 s). */
  timeoutMs?: number
  /**
   * Where the weights live and runs happen: `'cpu'`, `'cuda'` or `'cuda:N'` (a CUDA build).
   * Default: `TL_DEVICE` from the environment, else `'cpu'` (TL picks the GPU when present; the
   * GPU path here is experimental, so it is opt-in).
   */
  device?: Device
  /** TL's `checkpoint_index`: load the training checkpoint with this index in the model's label list (Pythia, stanford-crfm). */
  checkpointIndex?: number
  /** TL's `checkpoint_value`: load the training checkpoint with this label (a step). */
  checkpointValue?: number
  /** TL's `n_devices`; only 1 is supported. */
  nDevices?: number
}
