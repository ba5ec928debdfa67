import * as fs from 'node:fs'

import { TransformerLensError } from '../errors'
import type { HookedTransformer } from '../model/hooked-transformer'
import { Tensor } from '../tensor'
import type { Device } from '../utils/devices'
import { boolArg, intArg, invalidArg, stringArg } from '../utils/args'
import { withScope } from '../utils/scope'
import { LensArtifactOptions, loadLensArtifacts, readJsonObject, readTorchFile, SaveLensOptions, writeLensArtifacts } from './artifacts'
import { Unembed } from './unembed'

/**
 * A lens: decodes the residual stream of one layer into logits (tuned-lens's `Lens`).
 *
 * Lenses act on the residual stream a model's layers read, HF's `hidden_states`, which is TL's
 * `blocks.{i}.hook_resid_pre` of the *unprocessed* model: load the model with
 * `HookedTransformer.fromPretrainedNoProcessing` to use a lens trained on HF hidden states
 * (tuned-lens's pretrained lenses). With processed weights (`fromPretrained`'s folding and
 * centring) the residual stream is changed and such a lens reads a different stream.
 */
export abstract class Lens {
  readonly unembed: Unembed

  constructor(unembed: Unembed) {
    if (!(unembed instanceof Unembed)) throw invalidArg('unembed', 'an Unembed', unembed)
    this.unembed = unembed
  }

  /** The hidden state `h` of layer `idx` mapped to the final hidden state, before the unembedding. */
  abstract transformHidden(h: Tensor, idx: number): Tensor

  /** Logits `[..., d_vocab]` of hidden states `h` `[..., d_model]` from layer `idx`. */
  abstract forward(h: Tensor, idx: number): Tensor

  /** Frees the lens's tensors (its Unembed included). */
  dispose(): void {
    this.unembed.dispose()
  }
  [Symbol.dispose](): void {
    this.dispose()
  }
}

/** The logit lens: the model's own final norm and unembedding applied to any layer. */
export class LogitLens extends Lens {
  /** tuned-lens's `LogitLens.from_model`: the model's final norm and unembedding. */
  static fromModel(model: HookedTransformer): LogitLens {
    return new LogitLens(Unembed.fromModel(model))
  }

  /** The identity (a copy of `h`, the caller's to dispose). */
  transformHidden(h: Tensor, idx: number): Tensor {
    intArg('idx', idx)
    return h.clone()
  }

  forward(h: Tensor, idx: number): Tensor {
    intArg('idx', idx)
    return this.unembed.forward(h)
  }
}

/** tuned-lens's `TunedLensConfig`, with its snake_case field names (what `config.json` holds). */
export interface TunedLensConfig {
  /** The model the lens was tuned for. */
  base_model_name_or_path: string
  d_model: number
  /** Translators: one per layer. */
  num_hidden_layers: number
  bias: boolean
  base_model_revision: string | null
  /** tuned-lens's hash of the unembedding (set from the Unembed when the lens is built). */
  unembed_hash: string | null
  lens_type: string
}

/** One layer's affine translator: `nn.Linear(d_model, d_model)`, weight `[out, in]`. */
export interface Translator {
  /** `[d_model, d_model]`, `out × in` as torch's Linear. */
  weight: Tensor
  /** `[d_model]`, or null for a lens without biases. */
  bias: Tensor | null
}

/** `t` on `device` (the same tensor when it is there already; else the copy, `t` freed). */
function onDevice(t: Tensor, device: string): Tensor {
  if (t.device === device) return t
  const moved = t.to(device as Device)
  t.dispose()
  return moved
}

const CONFIG_KEYS = ['base_model_name_or_path', 'd_model', 'num_hidden_layers', 'bias', 'base_model_revision', 'unembed_hash', 'lens_type']

/**
 * tuned-lens's `TunedLensConfig.from_dict`: unknown keys are dropped with a warning, as tuned-lens
 * does; missing required ones are `TL_CORRUPT_FILE`.
 */
export function tunedLensConfigFromDict(dict: Record<string, unknown>, where = 'the lens config'): TunedLensConfig {
  if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) throw new TransformerLensError('TL_CORRUPT_FILE', `${where} is not a JSON object`)
  for (const k of Object.keys(dict)) if (!CONFIG_KEYS.includes(k)) console.warn(`Ignoring config key '${k}'`)
  const bad = (k: string, what: string) => new TransformerLensError('TL_CORRUPT_FILE', `${where}: '${k}' must be ${what}, got ${JSON.stringify(dict[k])}`)
  const int = (k: string) => {
    const v = dict[k]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw bad(k, 'a positive integer')
    return v
  }
  const str = (k: string, dflt: string | null) => {
    const v = dict[k] ?? dflt
    if (v !== null && typeof v !== 'string') throw bad(k, 'a string')
    return v
  }
  if (typeof dict.base_model_name_or_path !== 'string') throw bad('base_model_name_or_path', 'a string')
  const bias = dict.bias ?? true
  if (typeof bias !== 'boolean') throw bad('bias', 'a boolean')
  return {
    base_model_name_or_path: dict.base_model_name_or_path,
    d_model: int('d_model'),
    num_hidden_layers: int('num_hidden_layers'),
    bias,
    base_model_revision: str('base_model_revision', null),
    unembed_hash: str('unembed_hash', null),
    lens_type: str('lens_type', 'linear_tuned_lens') as string,
  }
}

export interface TunedLensFromModelOptions {
  /** The model's git revision, recorded in the config (tuned-lens's `model_revision`). */
  modelRevision?: string | null
  /** Translators with biases (default true). */
  bias?: boolean
  /** Recorded as `base_model_name_or_path` (default: the model's hub id, TL's `cfg.tokenizer_name`, else `cfg.model_name`). */
  baseModelNameOrPath?: string
}

/**
 * A tuned lens (tuned-lens's `TunedLens`): per layer an affine translator, added residually
 * (`transformHidden(h, i) = h + h·Wᵢᵀ + bᵢ`), then the model's final norm and unembedding.
 *
 * `translators[i].weight` / `.bias` are plain Tensors (torch's Linear layout, `[out, in]`);
 * replace them with `setTranslator(i, ...)` or `loadTranslators(stateDict)` (tuned-lens's
 * `params.pt` keys: `{i}.weight`, `{i}.bias`). Loading and saving artifacts is in
 * ./artifacts.ts (`TunedLens.load`, `fromUnembedAndPretrained`, `save`).
 */
export class TunedLens extends Lens {
  readonly config: TunedLensConfig
  readonly #translators: Translator[]

  /**
   * A lens with identity translators (zero weights and biases), one per layer, as tuned-lens's
   * constructor; `config.unembed_hash` is set from `unembed`.
   */
  constructor(unembed: Unembed, config: TunedLensConfig) {
    super(unembed)
    const cfg = tunedLensConfigFromDict({ ...config } as unknown as Record<string, unknown>)
    if (cfg.d_model !== unembed.dModel) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `the lens config has d_model ${cfg.d_model}, the unembedding ${unembed.dModel}`)
    }
    cfg.unembed_hash = unembed.unembeddingHash()
    this.config = cfg
    const dtype = unembed.W_U.isFloatingPoint() ? unembed.W_U.dtype : 'float16'
    const d = cfg.d_model
    this.#translators = Array.from({ length: cfg.num_hidden_layers }, () => ({
      weight: onDevice(Tensor.zeros([d, d], dtype), unembed.W_U.device),
      bias: cfg.bias ? onDevice(Tensor.zeros([d], dtype), unembed.W_U.device) : null,
    }))
  }

  /** tuned-lens's `TunedLens.from_model`: identity translators for each of the model's layers. */
  static fromModel(model: HookedTransformer, options: TunedLensFromModelOptions = {}): TunedLens {
    const cfg = model.cfg
    const name = options.baseModelNameOrPath ?? (typeof cfg.tokenizer_name === 'string' ? cfg.tokenizer_name : cfg.model_name)
    const unembed = Unembed.fromModel(model)
    try {
      return new TunedLens(unembed, {
        base_model_name_or_path: stringArg('baseModelNameOrPath', name),
        d_model: cfg.d_model,
        num_hidden_layers: cfg.n_layers,
        bias: boolArg('bias', options.bias ?? true),
        base_model_revision: options.modelRevision ?? null,
        unembed_hash: null,
        lens_type: 'linear_tuned_lens',
      })
    } catch (e) {
      unembed.dispose()
      throw e
    }
  }

  /**
   * tuned-lens's `TunedLens.from_unembed_and_pretrained`: the config and translators of lens
   * `lensResourceId` (a folder with config.json + params.pt, else a lens name in tuned-lens's
   * hub space, see `loadLensArtifacts`) over `unembed`. A config whose `unembed_hash` differs
   * from the Unembed's gets tuned-lens's warning (the lens may come from another model).
   * The lens owns `unembed`.
   */
  static async fromUnembedAndPretrained(unembed: Unembed, lensResourceId: string, options: LensArtifactOptions = {}): Promise<TunedLens> {
    const { configPath, ckptPath } = await loadLensArtifacts(lensResourceId, options)
    const config = tunedLensConfigFromDict(readJsonObject(configPath), configPath)
    if (config.unembed_hash && unembed.unembeddingHash() !== config.unembed_hash) {
      console.warn("The unembedding matrix hash does not match the lens' hash.This lens may have been trained with a different unembedding.")
    }
    const lens = new TunedLens(unembed, config)
    const state = await readTorchFile(ckptPath)
    try {
      lens.loadTranslators(state)
    } catch (e) {
      lens.dispose()
      throw e
    } finally {
      for (const t of state.values()) t.dispose()
    }
    return lens
  }

  /**
   * tuned-lens's `TunedLens.from_model_and_pretrained`: `fromUnembedAndPretrained` with the
   * model's Unembed; `lensResourceId` defaults to the model's hub id (`cfg.tokenizer_name`).
   * Use it on a model loaded with `fromPretrainedNoProcessing` (see `Lens`).
   */
  static async fromModelAndPretrained(model: HookedTransformer, lensResourceId?: string | null, options: LensArtifactOptions = {}): Promise<TunedLens> {
    const id = lensResourceId ?? (typeof model.cfg.tokenizer_name === 'string' ? model.cfg.tokenizer_name : model.cfg.model_name)
    const unembed = Unembed.fromModel(model)
    try {
      return await TunedLens.fromUnembedAndPretrained(unembed, stringArg('lensResourceId', id), options)
    } catch (e) {
      unembed.dispose()
      throw e
    }
  }

  /** A lens saved in folder `dir` (config.json + params.pt, as tuned-lens or `save` writes) over `model`. */
  static async load(dir: string, model: HookedTransformer, options: Pick<LensArtifactOptions, 'configFile' | 'ckptFile'> = {}): Promise<TunedLens> {
    stringArg('dir', dir)
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new TransformerLensError('TL_MISSING_FILE', `${dir} is not a folder`)
    return TunedLens.fromModelAndPretrained(model, dir, { ...options, localFilesOnly: true })
  }

  /**
   * tuned-lens's `save(path, ckpt, config)`: `config.json` and `params.pt` (which tuned-lens
   * and `torch.load` read), plus `params.safetensors` with the same tensors.
   */
  async save(dir: string, options: SaveLensOptions = {}): Promise<void> {
    const sd = this.translatorStateDict()
    try {
      await writeLensArtifacts(dir, { ...this.config }, sd, options)
    } finally {
      for (const t of sd.values()) t.dispose()
    }
  }

  /** The translators, one per layer (tuned-lens's `layer_translators`). Read-only array; tensors are the lens's. */
  get translators(): readonly Readonly<Translator>[] {
    return this.#translators
  }

  /** tuned-lens's `len(lens)`: the number of translators. */
  get length(): number {
    return this.#translators.length
  }

  #layer(idx: number): Translator {
    intArg('idx', idx)
    const n = this.#translators.length
    const i = idx < 0 ? idx + n : idx
    if (i < 0 || i >= n) throw new TransformerLensError('TL_INVALID_ARGUMENT', `layer ${idx} is out of range for a lens with ${n} translators`)
    return this.#translators[i]
  }

  /**
   * Replaces translator `idx` (the lens takes ownership of the tensors and frees the old ones).
   * `weight` must be `[d_model, d_model]` (`out × in`), `bias` `[d_model]` (null when the lens has no biases).
   */
  setTranslator(idx: number, weight: Tensor, bias: Tensor | null = null): void {
    const t = this.#layer(idx)
    const d = this.config.d_model
    if (!(weight instanceof Tensor) || weight.ndim !== 2 || weight.shape[0] !== d || weight.shape[1] !== d) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `translator ${idx}'s weight must be [${d}, ${d}], got ${weight instanceof Tensor ? `[${weight.shape}]` : typeof weight}`)
    }
    if (this.config.bias !== (bias !== null)) {
      throw new TransformerLensError('TL_INVALID_ARGUMENT', `this lens ${this.config.bias ? 'has' : 'has no'} translator biases: pass ${this.config.bias ? 'a [d_model] bias' : 'null'}`)
    }
    if (bias !== null && (!(bias instanceof Tensor) || bias.ndim !== 1 || bias.shape[0] !== d)) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `translator ${idx}'s bias must be [${d}], got ${bias instanceof Tensor ? `[${bias.shape}]` : typeof bias}`)
    }
    if (t.weight !== weight) t.weight.dispose()
    if (t.bias !== null && t.bias !== bias) t.bias.dispose()
    t.weight = weight
    t.bias = bias
  }

  /**
   * Loads translators from a state dict with tuned-lens's `layer_translators` keys (`{i}.weight`,
   * `{i}.bias`), as `layer_translators.load_state_dict(state)`: strict, so a missing or unknown
   * key is `TL_MISSING_WEIGHT` / `TL_CORRUPT_FILE`. Tensors are cast to the lens's dtype; the
   * lens owns what it keeps (the given tensors stay the caller's).
   */
  loadTranslators(stateDict: ReadonlyMap<string, Tensor> | Record<string, Tensor>): void {
    const sd = stateDict instanceof Map ? stateDict : new Map(Object.entries(stateDict))
    const want = new Set<string>()
    this.#translators.forEach((_, i) => {
      want.add(`${i}.weight`)
      if (this.config.bias) want.add(`${i}.bias`)
    })
    for (const k of want) if (!sd.has(k)) throw new TransformerLensError('TL_MISSING_WEIGHT', `the lens state dict has no '${k}'`)
    for (const k of sd.keys()) if (!want.has(k)) throw new TransformerLensError('TL_CORRUPT_FILE', `unexpected key '${k}' in the lens state dict (it has ${this.#translators.length} translators${this.config.bias ? '' : ' without biases'})`)
    const dtype = this.#translators[0]?.weight.dtype ?? 'float32'
    const device = this.unembed.W_U.device
    const own = (t: Tensor) => onDevice(t.dtype === dtype ? t.clone() : t.to(dtype), device)
    const fresh: Translator[] = []
    try {
      for (let i = 0; i < this.#translators.length; i++) {
        fresh.push({ weight: own(sd.get(`${i}.weight`)!), bias: this.config.bias ? own(sd.get(`${i}.bias`)!) : null })
      }
      fresh.forEach((t, i) => this.setTranslator(i, t.weight, t.bias))
    } catch (e) {
      for (const t of fresh) if (!this.#translators.some((x) => x.weight === t.weight)) (t.weight.dispose(), t.bias?.dispose())
      throw e
    }
  }

  /** The translators as tuned-lens's `layer_translators.state_dict()`: `{i}.weight`, `{i}.bias` (views, the caller's to dispose). */
  translatorStateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>()
    this.#translators.forEach((t, i) => {
      out.set(`${i}.weight`, t.weight.get())
      if (t.bias !== null) out.set(`${i}.bias`, t.bias.get())
    })
    return out
  }

  /** `h + translator_idx(h)`: tuned-lens adds the translator's output to `h` (identity at init). */
  transformHidden(h: Tensor, idx: number): Tensor {
    if (!(h instanceof Tensor)) throw invalidArg('h', 'a Tensor', h)
    const t = this.#layer(idx)
    if (h.shape[h.ndim - 1] !== this.config.d_model) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `hidden states must end in d_model = ${this.config.d_model}, got [${h.shape}]`)
    }
    return withScope((s) => {
      const x = h.dtype === t.weight.dtype ? h : s.keep(h.to(t.weight.dtype))
      let y = s.keep(x.matmul(s.keep(t.weight.T)))
      if (t.bias !== null) y = s.keep(y.add(t.bias))
      return x.add(y)
    })
  }

  /** `unembed(transformHidden(h, idx))`. */
  forward(h: Tensor, idx: number): Tensor {
    return withScope((s) => this.unembed.forward(s.keep(this.transformHidden(h, idx))))
  }

  override dispose(): void {
    for (const t of this.#translators) {
      t.weight.dispose()
      t.bias?.dispose()
    }
    super.dispose()
  }
}
