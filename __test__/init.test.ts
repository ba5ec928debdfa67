/**
 * TL's init helpers against TransformerLens (golden/init/init.json,
 * scripts/reference/make_init_fixtures.py): calc_fan_in_and_fan_out and torch's calculate_gain
 * exactly, the bound / std TL hands to nn.init.uniform_ / normal_ exactly, and our draws'
 * max |x| and std against TL's draws within statistical tolerance.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import {
  calcFanInAndFanOut,
  calculateGain,
  initKaimingNormal,
  initKaimingUniform,
  initXavierNormal,
  initXavierUniform,
  KaimingOptions,
  Tensor,
} from '../src/index'
import { initDistribution } from '../src/utils/init'
import { codeOf } from './helpers/errors'
import { FIXTURES } from './helpers/fixtures'
import { sampleStats } from './helpers/stats'

const G = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'golden', 'init', 'init.json'), 'utf8'))

type Kind = 'xavier_uniform' | 'xavier_normal' | 'kaiming_uniform' | 'kaiming_normal'
interface Case {
  fn: Kind
  shape: number[]
  kwargs: Record<string, number | string | null>
  dist: 'uniform' | 'normal'
  bound?: number
  std?: number
  sample: { n: number; max_abs: number; mean: number; std: number }
}
const CASES: Case[] = G.cases
const FNS = { xavier_uniform: initXavierUniform, xavier_normal: initXavierNormal, kaiming_uniform: initKaimingUniform, kaiming_normal: initKaimingNormal }
const label = (c: Case) => `${c.fn}(${JSON.stringify(c.shape)}, ${JSON.stringify(c.kwargs)})`



test('calcFanInAndFanOut equals TL (1-D, 2-D and the 3-D attention layout; scalars and 4-D refused)', (t) => {
  t.true(G.fan.length >= 8)
  for (const row of G.fan) {
    if ('error' in row) {
      t.is(codeOf(() => calcFanInAndFanOut(row.shape)), 'TL_SHAPE_MISMATCH', JSON.stringify(row.shape))
    } else {
      t.deepEqual(calcFanInAndFanOut(row.shape), [row.fan_in, row.fan_out], JSON.stringify(row.shape))
      t.deepEqual(calcFanInAndFanOut(Tensor.zeros(row.shape)), [row.fan_in, row.fan_out])
    }
  }
})

test("calculateGain equals torch's", (t) => {
  for (const row of G.gain) {
    if ('error' in row) t.is(codeOf(() => calculateGain(row.nonlinearity, row.param)), 'TL_INVALID_ARGUMENT', row.nonlinearity)
    else t.is(calculateGain(row.nonlinearity, row.param), row.gain, `${row.nonlinearity}(${row.param})`)
  }
})

test('every init uses exactly the bound / std TL computes', (t) => {
  t.true(CASES.length > 100)
  for (const c of CASES) {
    const d = initDistribution(c.fn, c.shape, c.kwargs as KaimingOptions)
    t.is(d.dist, c.dist, label(c))
    t.is(d.dist === 'uniform' ? d.bound : d.std, (c.dist === 'uniform' ? c.bound : c.std)!, label(c))
  }
})

test("draws match TL's draws: max |x| and std within statistical tolerance", (t) => {
  const large = CASES.filter((c) => c.sample.n >= 100_000)
  t.true(large.length >= 70)
  large.forEach((c, i) => {
    const x = FNS[c.fn](c.shape, { ...(c.kwargs as KaimingOptions), seed: i, dtype: 'float64' })
    t.deepEqual(x.shape, c.shape)
    const s = sampleStats(x.toArray() as Float64Array)
    const scale = c.sample.std
    // std of 1e5 draws is within ~0.5% (uniform) / ~0.7% (normal) of the truth at 3 sigma.
    t.true(Math.abs(s.std - c.sample.std) < 0.015 * scale, `${label(c)} std ${s.std} vs TL ${c.sample.std}`)
    t.true(Math.abs(s.mean - c.sample.mean) < 0.03 * scale, `${label(c)} mean ${s.mean} vs TL ${c.sample.mean}`)
    if (c.dist === 'uniform') {
      // Both fill [-bound, bound): the largest |x| of 1e5 is within 1e-4 of the bound.
      t.true(s.maxAbs <= c.bound! && Math.abs(s.maxAbs - c.sample.max_abs) < 3e-4 * c.bound!, `${label(c)} max ${s.maxAbs} vs TL ${c.sample.max_abs}`)
    } else {
      // The largest |x| of 1e5+ normal draws is about 4.5 std (Gumbel-spread, ~0.3 std).
      const inRange = (m: number) => m > 3.5 * c.std! && m < 6 * c.std!
      t.true(inRange(s.maxAbs) && inRange(c.sample.max_abs), `${label(c)} max ${s.maxAbs}, TL ${c.sample.max_abs}`)
      t.true(Math.abs(s.maxAbs - c.sample.max_abs) < 2 * scale, `${label(c)} max ${s.maxAbs} vs TL ${c.sample.max_abs}`)
    }
  })
})

test('a Tensor target gives its shape and dtype; a seed reproduces', (t) => {
  const w = Tensor.zeros([4, 32, 8], 'float64')
  const a = initKaimingNormal(w, { seed: 3, nonlinearity: 'tanh' })
  t.deepEqual([a.shape, a.dtype], [[4, 32, 8], 'float64'])
  t.deepEqual(initKaimingNormal(w, { seed: 3, nonlinearity: 'tanh' }).toList(), a.toList())
  t.notDeepEqual(initKaimingNormal(w, { seed: 4, nonlinearity: 'tanh' }).toList(), a.toList())
  t.is(initXavierUniform([3, 5]).dtype, 'float32')
  t.is(initXavierUniform([3, 5], { dtype: 'bfloat16', seed: 1 }).dtype, 'bfloat16')
  // A Tensor target's shape decides the fans, as TL's param does.
  const tl = CASES.find((c) => c.fn === 'kaiming_uniform' && c.kwargs.a === 0.2 && c.shape.join() === '12,256,40')!
  t.deepEqual(initDistribution('kaiming_uniform', Tensor.zeros([12, 256, 40]), { nonlinearity: 'leaky_relu', a: 0.2 }), { dist: 'uniform', bound: tl.bound! })
})

test('bad targets and arguments are coded errors', (t) => {
  t.is(codeOf(() => initXavierUniform([])), 'TL_SHAPE_MISMATCH')
  t.is(codeOf(() => initKaimingNormal([2, 3, 4, 5])), 'TL_SHAPE_MISMATCH')
  t.is(codeOf(() => initKaimingUniform([2, 3], { nonlinearity: 'swish' as 'relu' })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => initKaimingUniform([2, 3], { mode: 'fan_avg' as 'fan_in' })), 'TL_INVALID_ARGUMENT')
  t.is(codeOf(() => initXavierNormal(Tensor.zeros([2, 3], 'int64'), { seed: 1 })), 'TL_DTYPE')
  t.is(codeOf(() => initXavierNormal([2, 3], { seed: -2 })), 'TL_INVALID_ARGUMENT')
})
