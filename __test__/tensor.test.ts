/** Tensor ops against references computed here in plain JS (math identities, not model numbers). */
import test from 'ava'

import { Tensor, TransformerLensError } from '../src/index'

const seq = (n: number) => Float32Array.from({ length: n }, (_, i) => (i * 7) % 11 - 5)

test('from / toArray / toList / item / shape / dtype', (t) => {
  const x = Tensor.from(seq(6), [2, 3])
  t.deepEqual(x.shape, [2, 3])
  t.is(x.dtype, 'float32')
  t.deepEqual(Array.from(x.toArray() as Float32Array), Array.from(seq(6)))
  t.deepEqual(x.toList(), [[-5, 2, -2], [5, 1, -3]])
  t.is(Tensor.from(new BigInt64Array([7n]), [1]).item(), 7)
  t.is(Tensor.from(new BigInt64Array([7n]), [1]).dtype, 'int64')
  t.true(x.isFloatingPoint() && x.to('bfloat16').isFloatingPoint())
  t.false(Tensor.from(new BigInt64Array([7n]), [1]).isFloatingPoint())
  t.is((t.throws(() => Tensor.from(seq(5), [2, 3])) as TransformerLensError).code, 'TL_SHAPE_MISMATCH')
})

test('broadcasting arithmetic and comparisons', (t) => {
  const a = Tensor.from(seq(6), [2, 3])
  const b = Tensor.from(new Float32Array([1, 10, 100]), [3])
  t.deepEqual(a.add(b).toList(), [[-4, 12, 98], [6, 11, 97]])
  t.deepEqual(a.mul(2).sub(1).toList(), [[-11, 3, -5], [9, 1, -7]])
  t.deepEqual(a.gt(0).toList(), [[0, 1, 0], [1, 1, 0]])
  t.is((t.throws(() => a.add(Tensor.ones([4]))) as TransformerLensError).code, 'TL_SHAPE_MISMATCH')
})

test('matmul matches a JS triple loop (batched and 1-D)', (t) => {
  const a = Tensor.from(seq(24), [2, 3, 4])
  const b = Tensor.from(seq(20).map((v) => v / 2), [4, 5])
  const c = a.matmul(b)
  t.deepEqual(c.shape, [2, 3, 5])
  const A = seq(24)
  const B = seq(20).map((v) => v / 2)
  const C = c.toArray() as Float32Array
  for (let n = 0; n < 2; n++)
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 5; j++) {
        let s = 0
        for (let k = 0; k < 4; k++) s += A[n * 12 + i * 4 + k] * B[k * 5 + j]
        t.true(Math.abs(C[n * 15 + i * 5 + j] - s) < 1e-5)
      }
  t.deepEqual(Tensor.from(new Float32Array([1, 2])).matmul(Tensor.from(new Float32Array([3, 4]))).item(), 11)
})

test('reductions, softmax, norm, topk', (t) => {
  const x = Tensor.from(seq(6), [2, 3])
  t.deepEqual(x.sum(1).toList(), [-5, 3])
  t.deepEqual(x.mean(0, { keepdim: true }).shape, [1, 3])
  t.deepEqual(x.max(1).toList(), [2, 5])
  t.deepEqual(x.argmax(-1).toList(), [1, 0])
  const sm = x.softmax(-1).toArray() as Float32Array
  const row = [-5, 2, -2].map(Math.exp)
  const z = row.reduce((a, b) => a + b)
  row.forEach((v, i) => t.true(Math.abs(sm[i] - v / z) < 1e-6))
  const ls = x.logSoftmax().toArray() as Float32Array
  t.true(Math.abs(ls[0] - Math.log(row[0] / z)) < 1e-5)
  t.true(Math.abs(x.norm().item() - Math.sqrt([-5, 2, -2, 5, 1, -3].reduce((a, v) => a + v * v, 0))) < 1e-5)
  const [v, i] = x.topk(2)
  t.deepEqual(v.toList(), [[2, -2], [5, 1]])
  t.deepEqual(i.toList(), [[1, 2], [0, 1]])
})

test('TL-style get and sliceAssign', (t) => {
  const x = Tensor.from(seq(24), [2, 3, 4])
  t.deepEqual(x.get(1, null, -1).shape, [3])
  t.deepEqual(x.get(null, [1, 3]).shape, [2, 2, 4])
  t.deepEqual(x.get(0, 0).toList(), Array.from(seq(4)))
  const z = x.sliceAssign([null, null, 3], 0)
  t.deepEqual(z.get(null, null, 3).sum().item(), 0)
  t.deepEqual(x.get(null, null, 3).sum().item(), (x.get(null, null, 3).toList() as number[][]).flat().reduce((a, b) => a + b, 0))
  const w = x.sliceAssign([0, [0, 2]], Tensor.ones([4]))
  t.deepEqual(w.get(0, [0, 2]).toList(), [[1, 1, 1, 1], [1, 1, 1, 1]])
  t.is((t.throws(() => x.get(5)) as TransformerLensError).code, 'TL_SHAPE_MISMATCH')
})

test('shape ops, cat/stack, casts, arange', (t) => {
  const x = Tensor.from(seq(6), [2, 3])
  t.deepEqual(x.T.shape, [3, 2])
  t.deepEqual(x.transpose(0, 1).toList(), [[-5, 5], [2, 1], [-2, -3]])
  t.deepEqual(x.reshape(3, -1).shape, [3, 2])
  t.deepEqual(x.unsqueeze(0).squeeze().shape, [2, 3])
  t.deepEqual(Tensor.cat([x, x], 1).shape, [2, 6])
  t.deepEqual(Tensor.stack([x, x]).shape, [2, 2, 3])
  t.deepEqual(Tensor.arange(4).toList(), [0, 1, 2, 3])
  t.is(Tensor.arange(4).dtype, 'int64')
  for (const dt of ['float16', 'bfloat16', 'float64', 'int64'] as const) t.deepEqual(x.to(dt).to('float32').toList(), x.toList())
  t.deepEqual(x.indexSelect(1, Tensor.from(new BigInt64Array([2n, 0n]))).toList(), [[-2, -5], [-3, 5]])
})
