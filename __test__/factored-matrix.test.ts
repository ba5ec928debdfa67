/**
 * FactoredMatrix, getCorner, compositionScores and Tensor.svd / eigenvalues against TL 2.16.1
 * and torch.linalg on seeded random factors (scripts/reference/make_linalg_fixtures.py).
 */
import test from 'ava'

import { compositionScores, FactoredMatrix, getCorner, Tensor, TransformerLensError } from '../src/index'
import type { IndexEntry } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden } from './helpers/fixtures'
import { assertCloseUpToSign, assertEigenvalues, assertReconstructs, input } from './helpers/linalg'

const TOL = 1e-4
const G = () => golden('linalg', 'factored_matrix')
const gt = (key: string) => G().tensors.get(key)
const fm = (name: string) => new FactoredMatrix(input(G(), `in.${name}.A`), input(G(), `in.${name}.B`))

/** A FactoredMatrix result against TL's: dims, both factors (as TL broadcasts them) and, if stored, the product. */
function assertFm(t: any, actual: FactoredMatrix, name: string): void {
  const meta = G().json.fm[name]
  t.deepEqual(actual.shape, meta.shape, `${name}: shape`)
  t.deepEqual([actual.ldim, actual.mdim, actual.rdim], [meta.ldim, meta.mdim, meta.rdim], `${name}: ldim/mdim/rdim`)
  t.is(actual.ndim, meta.ndim)
  assertClose(t, actual.A, gt(`${name}.A`), TOL, `${name}.A`)
  assertClose(t, actual.B, gt(`${name}.B`), TOL, `${name}.B`)
  if (gt(`${name}.AB`)) assertClose(t, actual.AB, gt(`${name}.AB`), TOL, `${name}.AB`)
}

function throwsCode(t: any, fn: () => unknown, code: string): void {
  const err = t.throws(fn, { instanceOf: TransformerLensError })
  t.is(err?.code, code)
}

test('construction broadcasts leading dims as TL (factors, shape, dims)', (t) => {
  const m = fm('fm1')
  assertFm(t, m, 'fm1')
  t.true(m.hasLeadingDims)
  t.false(fm('fm2').hasLeadingDims)
  t.is(m.toString(), 'FactoredMatrix: Shape([2, 5, 5]), Hidden Dim(3)')
  const [a, b] = m.pair
  t.deepEqual([a.shape, b.shape], [[2, 5, 3], [2, 3, 5]])
})

test('construction errors: inner dims, ranks, leading dims', (t) => {
  throwsCode(t, () => new FactoredMatrix(Tensor.zeros([4, 3]), Tensor.zeros([2, 5])), 'TL_SHAPE_MISMATCH')
  throwsCode(t, () => new FactoredMatrix(Tensor.zeros([3]), Tensor.zeros([3, 5])), 'TL_SHAPE_MISMATCH')
  throwsCode(t, () => new FactoredMatrix(Tensor.zeros([2, 4, 3]), Tensor.zeros([3, 3, 5])), 'TL_SHAPE_MISMATCH')
})

for (const name of ['fm1', 'fm2']) {
  test(`${name}: AB, BA and T match TL`, (t) => {
    const m = fm(name)
    assertClose(t, m.AB, gt(`${name}.AB`), TOL, `${name}.AB`)
    assertClose(t, m.BA, gt(`${name}.BA`), TOL, `${name}.BA`)
    assertFm(t, m.T, `${name}.T`)
  })

  test(`${name}: S, norm, U and Vh (= V) match TL`, (t) => {
    const m = fm(name)
    const [U, S, Vh] = m.svd()
    t.is(m.svd()[0], U, 'svd() is cached')
    assertClose(t, S, gt(`${name}.S`), TOL, `${name}.S`)
    assertClose(t, m.S, gt(`${name}.S`), TOL, `${name}.S (getter)`)
    assertClose(t, m.norm(), gt(`${name}.norm`), TOL, `${name}.norm`)
    assertCloseUpToSign(t, U, gt(`${name}.U`), TOL, `${name}.U`)
    assertCloseUpToSign(t, m.Vh, gt(`${name}.Vh`), TOL, `${name}.Vh`)
    t.is(m.V, m.Vh, 'V is the tensor TL calls Vh')
    assertReconstructs(t, m.U, m.S, m.V, gt(`${name}.AB`), TOL, name)
  })

  test(`${name}: eigenvalues match TL (as a multiset)`, (t) => {
    const m = fm(name)
    assertEigenvalues(t, m.eigenvalues, gt(`${name}.eig.real`), gt(`${name}.eig.imag`), TOL, `${name}.eigenvalues`)
  })

  test(`${name}: collapseL, collapseR and makeEven match TL`, (t) => {
    const m = fm(name)
    assertCloseUpToSign(t, m.collapseL(), gt(`${name}.collapse_l`), TOL, `${name}.collapse_l`, 'rows')
    assertCloseUpToSign(t, m.collapseR(), gt(`${name}.collapse_r`), TOL, `${name}.collapse_r`, 'cols')
    const even = m.makeEven()
    const meta = G().json.fm[`${name}.make_even`]
    t.deepEqual([even.ldim, even.mdim, even.rdim], [meta.ldim, meta.mdim, meta.rdim])
    assertCloseUpToSign(t, even.A, gt(`${name}.make_even.A`), TOL, `${name}.make_even.A`, 'cols')
    assertCloseUpToSign(t, even.B, gt(`${name}.make_even.B`), TOL, `${name}.make_even.B`, 'rows')
    assertClose(t, even.AB, gt(`${name}.make_even.AB`), TOL, `${name}.make_even.AB`)
  })

  test(`${name}: getCorner (method and utils) matches TL`, (t) => {
    const m = fm(name)
    assertClose(t, m.getCorner(), gt(`${name}.get_corner`), TOL, `${name}.get_corner`)
    assertClose(t, m.getCorner(2), gt(`${name}.get_corner2`), TOL, `${name}.get_corner2`)
    assertClose(t, getCorner(m, 2), gt(`${name}.utils_get_corner2`), TOL, `${name}.utils_get_corner2`)
  })
}

test('products with vectors match TL', (t) => {
  const m = fm('fm1')
  const v = input(G(), 'in.vec5')
  assertClose(t, m.matmul(v) as Tensor, gt('fm1.matmul_vec'), TOL, 'fm1 @ vec')
  assertClose(t, m.rmatmul(v) as Tensor, gt('fm1.rmatmul_vec'), TOL, 'vec @ fm1')
})

test('products with matrices keep TL factorisation (both branches, both sides)', (t) => {
  assertFm(t, fm('fm1').matmul(input(G(), 'in.mat_r')) as FactoredMatrix, 'fm1.matmul_mat')
  assertFm(t, fm('fm1').rmatmul(input(G(), 'in.mat_l')) as FactoredMatrix, 'fm1.rmatmul_mat')
  assertFm(t, fm('fm2').matmul(input(G(), 'in.mat_r2')) as FactoredMatrix, 'fm2.matmul_mat')
  assertFm(t, fm('fm2').rmatmul(input(G(), 'in.mat_l2')) as FactoredMatrix, 'fm2.rmatmul_mat')
  throwsCode(t, () => fm('fm1').matmul(Tensor.zeros([4, 2])), 'TL_SHAPE_MISMATCH')
  throwsCode(t, () => fm('fm1').rmatmul(Tensor.zeros([2, 4])), 'TL_SHAPE_MISMATCH')
})

test('products of two FactoredMatrices keep the small inner dim, as TL', (t) => {
  assertFm(t, fm('fm1').matmul(fm('fm3')), 'fm1.matmul_fm3')
  assertFm(t, fm('fm1').rmatmul(fm('fm4')), 'fm4.matmul_fm1')
})

test('scalar multiples match TL; a non-scalar tensor is refused', (t) => {
  const scalar = G().json.scalar
  assertFm(t, fm('fm1').mul(scalar), 'fm1.mul')
  assertFm(t, fm('fm1').mul(Tensor.from([scalar])), 'fm1.rmul')
  throwsCode(t, () => fm('fm1').mul(Tensor.from([1, 2])), 'TL_SHAPE_MISMATCH')
})

test('indexing leading dims, rows and columns matches TL', (t) => {
  const cases = G().json.fm.index_cases as Record<string, IndexEntry[]>
  t.is(Object.keys(cases).length, 5)
  for (const [name, idx] of Object.entries(cases)) assertFm(t, fm('fm1').get(...idx), `fm1.get.${name}`)
  // The last row by a negative int (TL's slice(-1, 0) would be empty).
  const last = fm('fm1').get(0, -1)
  assertClose(t, last.AB, { ...gt('fm1.AB')!, shape: [1, 5], data: (gt('fm1.AB')!.data as Float32Array).slice(20, 25) }, TOL, 'fm1[0, -1]')
  throwsCode(t, () => fm('fm1').get(0, 0, 0, 0), 'TL_INVALID_ARGUMENT')
  t.deepEqual(fm('fm1').unsqueeze(0).shape, G().json.fm['fm1.unsqueeze0'].shape)
})

test('compositionScores (crossed and paired leading dims) and utils getCorner on a tensor match TL', (t) => {
  assertClose(t, compositionScores(fm('fm1'), fm('cs_right')), gt('composition.broadcast'), TOL, 'composition.broadcast')
  assertClose(t, compositionScores(fm('fm1'), fm('cs_pair'), { broadcastDims: false }), gt('composition.paired'), TOL, 'composition.paired')
  assertClose(t, compositionScores(fm('fm2'), fm('fm2')), gt('composition.plain'), TOL, 'composition.plain')
  assertClose(t, compositionScores(fm('fm2'), fm('cs_wide')), gt('composition.left2d'), TOL, 'composition.left2d')
  assertClose(t, compositionScores(fm('cs_wide').T, fm('fm2')), gt('composition.right2d'), TOL, 'composition.right2d')
  throwsCode(t, () => compositionScores(fm('fm1'), fm('fm3').T), 'TL_SHAPE_MISMATCH')
  assertClose(t, getCorner(input(G(), 'in.corner'), 2), gt('utils_get_corner.tensor'), 0, 'utils.get_corner(tensor)')
})

test('BA needs a square product', (t) => {
  throwsCode(t, () => (fm('fm1').matmul(input(G(), 'in.mat_r')) as FactoredMatrix).BA, 'TL_SHAPE_MISMATCH')
})

// ---- Tensor.svd / Tensor.eigenvalues against torch.linalg ----

for (const name of ['mat_l', 'fm1.A']) {
  test(`Tensor.svd of ${name} matches torch.linalg.svd (V = Vhᵀ, up to sign)`, (t) => {
    const x = input(G(), `in.${name}`)
    const { U, S, V } = x.svd()
    assertClose(t, S, gt(`tensor_svd.${name}.S`), TOL, `${name}.S`)
    assertCloseUpToSign(t, U, gt(`tensor_svd.${name}.U`), TOL, `${name}.U`, 'cols')
    assertCloseUpToSign(t, V.T, gt(`tensor_svd.${name}.Vh`), TOL, `${name}.Vh`, 'rows')
    assertReconstructs(t, U, S, V, G().tensors.get(`in.${name}`), TOL, name)
  })
}

test('Tensor.eigenvalues of a batch matches torch.linalg.eig', (t) => {
  const e = input(G(), 'in.square').eigenvalues()
  assertEigenvalues(t, e, gt('tensor_eig.square.real'), gt('tensor_eig.square.imag'), TOL, 'eig(square)')
})

test('Tensor.svd and eigenvalues: float64 kept; errors carry stable codes', (t) => {
  const x = input(G(), 'in.mat_l').to('float64')
  t.is(x.svd().S.dtype, 'float64')
  t.is(input(G(), 'in.square').to('float64').eigenvalues().imag.dtype, 'float64')
  throwsCode(t, () => Tensor.from([1, NaN, 0, 1], [2, 2]).svd(), 'TL_INVALID_ARGUMENT')
  throwsCode(t, () => Tensor.from([1, Infinity, 0, 1], [2, 2]).eigenvalues(), 'TL_INVALID_ARGUMENT')
  throwsCode(t, () => Tensor.zeros([2, 3]).eigenvalues(), 'TL_SHAPE_MISMATCH')
  throwsCode(t, () => Tensor.zeros([3]).svd(), 'TL_SHAPE_MISMATCH')
  throwsCode(t, () => Tensor.zeros([2, 2], 'int64').svd(), 'TL_DTYPE')
})
