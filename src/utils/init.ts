/**
 * TL's weight-init helpers (`utils.calc_fan_in_and_fan_out`, `utils.init_xavier_uniform_`, ...).
 * TL's fill a torch parameter in place; these take a Tensor (for its shape and dtype) or a shape
 * and return a new Tensor drawn with `Tensor.rand` / `Tensor.randn` (`seed` for reproducibility).
 */
import { TransformerLensError } from '../errors'
import { opt } from '../model/options'
import { DType, Tensor } from '../tensor'
import type { Seed } from './random'

/** What to initialise: a Tensor (its shape and dtype) or a shape. */
export type InitTarget = Tensor | readonly number[]

/** torch's `nn.init.calculate_gain` names. */
export type Nonlinearity =
  | 'linear'
  | 'conv1d'
  | 'conv2d'
  | 'conv3d'
  | 'conv_transpose1d'
  | 'conv_transpose2d'
  | 'conv_transpose3d'
  | 'sigmoid'
  | 'tanh'
  | 'relu'
  | 'leaky_relu'
  | 'selu'

export type FanMode = 'fan_in' | 'fan_out'

export interface InitOptions {
  /** The same seed gives the same values; without one a seed comes from `crypto`. */
  seed?: Seed
  /** For a shape target (default 'float32'); a Tensor target keeps its dtype. */
  dtype?: DType
}

export interface XavierOptions extends InitOptions {
  /** Default 1. */
  gain?: number
}

export interface KaimingOptions extends XavierOptions {
  /** The nonlinearity's parameter (leaky_relu's negative slope; default 0 as TL, null: torch's 0.01). */
  a?: number | null
  /** Default 'relu'. */
  nonlinearity?: Nonlinearity
  /** Default 'fan_in'. */
  mode?: FanMode
}

/** @internal The distribution an init draws from (the arguments TL passes to `nn.init.uniform_` / `normal_`). */
export type InitDistribution = { dist: 'uniform'; bound: number } | { dist: 'normal'; std: number }

const LINEAR_FNS = ['linear', 'conv1d', 'conv2d', 'conv3d', 'conv_transpose1d', 'conv_transpose2d', 'conv_transpose3d', 'sigmoid']

function shapeOf(target: InitTarget): number[] {
  return target instanceof Tensor ? target.shape : [...target]
}

/**
 * TL's `calc_fan_in_and_fan_out`, in TL's weight layouts: `[d]` → (1, d), `[d_in, d_out]` →
 * (d_in, d_out), attention's `[n_heads, d_model, d_head]` → (d_model, n_heads * d_head).
 * Scalars and more than 3 dims are TL_SHAPE_MISMATCH.
 */
export function calcFanInAndFanOut(target: InitTarget): [number, number] {
  const s = shapeOf(target)
  switch (s.length) {
    case 0:
      throw new TransformerLensError('TL_SHAPE_MISMATCH', 'Fan in and fan out can not be computed for scalars.')
    case 1:
      return [1, s[0]]
    case 2:
      return [s[0], s[1]]
    case 3:
      return [s[1], s[0] * s[2]]
    default:
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `Fan in and fan out can not be computed for shape [${s}] tensors.`)
  }
}

/** torch's `nn.init.calculate_gain(nonlinearity, param)`, which TL's kaiming inits apply. */
export function calculateGain(nonlinearity: string, param?: number | null): number {
  if (LINEAR_FNS.includes(nonlinearity)) return 1
  if (nonlinearity === 'tanh') return 5.0 / 3
  if (nonlinearity === 'relu') return Math.sqrt(2.0)
  if (nonlinearity === 'selu') return 3.0 / 4
  if (nonlinearity === 'leaky_relu') {
    const slope = param ?? 0.01
    if (typeof slope !== 'number' || !Number.isFinite(slope)) throw new TransformerLensError('TL_INVALID_ARGUMENT', `negative_slope ${String(param)} not a valid number`)
    return Math.sqrt(2.0 / (1 + slope * slope))
  }
  throw new TransformerLensError('TL_INVALID_ARGUMENT', `Unsupported nonlinearity ${nonlinearity}`)
}

type InitKind = 'xavier_uniform' | 'xavier_normal' | 'kaiming_uniform' | 'kaiming_normal'

/** TL's xavier scale: `gain`, over `fan_in + fan_out`. */
function xavier(target: InitTarget, options: XavierOptions): { gain: number; fan: number } {
  const [fanIn, fanOut] = calcFanInAndFanOut(target)
  return { gain: opt(options, 'gain', 1.0), fan: fanIn + fanOut }
}

/** TL's kaiming scale: `gain * calculate_gain(nonlinearity, a)`, over the fan `mode` picks. */
function kaiming(target: InitTarget, options: KaimingOptions): { gain: number; fan: number } {
  const [fanIn, fanOut] = calcFanInAndFanOut(target)
  const mode = opt<string>(options, 'mode', 'fan_in')
  if (mode !== 'fan_in' && mode !== 'fan_out') throw new TransformerLensError('TL_INVALID_ARGUMENT', `mode must be 'fan_in' or 'fan_out', got '${mode}'`)
  const a = options.a === undefined ? 0 : options.a
  const gain = opt(options, 'gain', 1.0) * calculateGain(opt(options, 'nonlinearity', 'relu'), a)
  return { gain, fan: mode === 'fan_in' ? fanIn : fanOut }
}

/** Each init's bound (uniform) or std (normal): `gain * sqrt(numerator / fan)`, as TL writes it. */
const INITS: Record<InitKind, { dist: 'uniform' | 'normal'; numerator: number; scale: (t: InitTarget, o: KaimingOptions) => { gain: number; fan: number } }> = {
  xavier_uniform: { dist: 'uniform', numerator: 6.0, scale: xavier },
  xavier_normal: { dist: 'normal', numerator: 2.0, scale: xavier },
  kaiming_uniform: { dist: 'uniform', numerator: 3.0, scale: kaiming },
  kaiming_normal: { dist: 'normal', numerator: 1.0, scale: kaiming },
}

/** @internal The bound or std each init uses, computed as TL's code does. */
export function initDistribution(kind: InitKind, target: InitTarget, options: KaimingOptions = {}): InitDistribution {
  const spec = INITS[kind]
  const { gain, fan } = spec.scale(target, options)
  const v = gain * Math.sqrt(spec.numerator / fan)
  return spec.dist === 'uniform' ? { dist: 'uniform', bound: v } : { dist: 'normal', std: v }
}

function draw(target: InitTarget, d: InitDistribution, options: InitOptions): Tensor {
  const shape = shapeOf(target)
  const dtype = target instanceof Tensor ? target.dtype : options.dtype
  const seed = options.seed
  return d.dist === 'uniform' ? Tensor.rand(shape, { low: -d.bound, high: d.bound, seed, dtype }) : Tensor.randn(shape, { std: d.std, seed, dtype })
}

/** TL's `init_xavier_uniform_(param, gain)`: uniform on ±`gain * sqrt(6 / (fan_in + fan_out))`. */
export function initXavierUniform(target: InitTarget, options: XavierOptions = {}): Tensor {
  return draw(target, initDistribution('xavier_uniform', target, options), options)
}

/** TL's `init_xavier_normal_(param, gain)`: normal with std `gain * sqrt(2 / (fan_in + fan_out))`. */
export function initXavierNormal(target: InitTarget, options: XavierOptions = {}): Tensor {
  return draw(target, initDistribution('xavier_normal', target, options), options)
}

/**
 * TL's `init_kaiming_uniform_(param, a, nonlinearity, gain, mode)`: uniform on
 * ±`gain * calculate_gain(nonlinearity, a) * sqrt(3 / fan)`.
 */
export function initKaimingUniform(target: InitTarget, options: KaimingOptions = {}): Tensor {
  return draw(target, initDistribution('kaiming_uniform', target, options), options)
}

/**
 * TL's `init_kaiming_normal_(param, a, nonlinearity, gain, mode)`: normal with std
 * `gain * calculate_gain(nonlinearity, a) * sqrt(1 / fan)`.
 */
export function initKaimingNormal(target: InitTarget, options: KaimingOptions = {}): Tensor {
  return draw(target, initDistribution('kaiming_normal', target, options), options)
}
