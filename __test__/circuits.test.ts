/**
 * Model circuits (QK, OV, all_composition_scores) and SVDInterpreter against TL 2.16.1 on the
 * fixture `gpt2` (3 layers, 4 heads, d_model 32, d_head 8): scripts/reference/make_linalg_fixtures.py.
 */
import test from 'ava'

import { FactoredMatrix, HookedTransformer, SVDInterpreter, TransformerLensError } from '../src/index'
import type { CompositionMode, SingularVectorType } from '../src/index'
import { assertClose } from './helpers/compare'
import { golden, useFixtureHub } from './helpers/fixtures'
import { assertCloseUpToSign, assertEigenvalues, assertReconstructs } from './helpers/linalg'

useFixtureHub()

const TOL = 1e-4
const G = () => golden('linalg', 'circuits')
const gt = (key: string) => G().tensors.get(key)

let processed: Promise<HookedTransformer> | null = null
let unprocessed: Promise<HookedTransformer> | null = null
const model = (mode: 'processed' | 'unprocessed') =>
  mode === 'processed'
    ? (processed ??= HookedTransformer.fromPretrained('gpt2'))
    : (unprocessed ??= HookedTransformer.fromPretrainedNoProcessing('gpt2'))

function throwsCode(t: any, fn: () => unknown, code: string): void {
  const err = t.throws(fn, { instanceOf: TransformerLensError })
  t.is(err?.code, code)
}

for (const name of ['QK', 'OV'] as const) {
  test(`model.${name}: shape, AB, S, norm, U and Vh match TL`, async (t) => {
    const m = await model('processed')
    const fm: FactoredMatrix = m[name]
    const meta = G().json.meta[name]
    t.deepEqual(fm.shape, meta.shape)
    t.deepEqual([fm.ldim, fm.mdim, fm.rdim], [meta.ldim, meta.mdim, meta.rdim])
    assertClose(t, fm.AB, gt(`${name}.AB`), TOL, `${name}.AB`)
    assertClose(t, fm.S, gt(`${name}.S`), TOL, `${name}.S`)
    assertClose(t, fm.norm(), gt(`${name}.norm`), TOL, `${name}.norm`)
    assertCloseUpToSign(t, fm.U, gt(`${name}.U`), TOL, `${name}.U`)
    assertCloseUpToSign(t, fm.Vh, gt(`${name}.Vh`), TOL, `${name}.Vh`)
    assertReconstructs(t, fm.U, fm.S, fm.V, gt(`${name}.AB`), TOL, name)
    fm.dispose()
  })

  test(`model.${name}: BA, eigenvalues, collapseL/R and makeEven match TL`, async (t) => {
    const fm = (await model('processed'))[name]
    assertClose(t, fm.BA, gt(`${name}.BA`), TOL, `${name}.BA`)
    assertEigenvalues(t, fm.eigenvalues, gt(`${name}.eig.real`), gt(`${name}.eig.imag`), TOL, `${name}.eigenvalues`)
    assertCloseUpToSign(t, fm.collapseL(), gt(`${name}.collapse_l`), TOL, `${name}.collapse_l`, 'rows')
    assertCloseUpToSign(t, fm.collapseR(), gt(`${name}.collapse_r`), TOL, `${name}.collapse_r`, 'cols')
    const even = fm.makeEven()
    assertCloseUpToSign(t, even.A, gt(`${name}.make_even.A`), TOL, `${name}.make_even.A`, 'cols')
    assertCloseUpToSign(t, even.B, gt(`${name}.make_even.B`), TOL, `${name}.make_even.B`, 'rows')
    assertClose(t, even.AB, gt(`${name}.AB`), TOL, `${name}.make_even.AB`)
    fm.dispose()
  })
}

for (const mode of ['Q', 'K', 'V'] as CompositionMode[]) {
  test(`allCompositionScores('${mode}') matches TL`, async (t) => {
    const m = await model('processed')
    assertClose(t, m.allCompositionScores(mode), gt(`composition.${mode}`), TOL, `composition.${mode}`)
  })
}

test('allCompositionScores refuses an unknown mode; allHeadLabels matches TL', async (t) => {
  const m = await model('processed')
  throwsCode(t, () => m.allCompositionScores('X' as CompositionMode), 'TL_INVALID_ARGUMENT')
  t.deepEqual(m.allHeadLabels(), G().json.meta.all_head_labels)
})

for (const mode of ['processed', 'unprocessed'] as const) {
  test(`SVDInterpreter.getSingularVectors (${mode}) matches TL up to sign per vector`, async (t) => {
    const interp = new SVDInterpreter(await model(mode))
    const cases = G().json.meta.svd_cases[mode] as Record<string, [SingularVectorType, number, number, number | null]>
    t.true(Object.keys(cases).length >= 2)
    for (const [name, [type, layer, n, head]] of Object.entries(cases)) {
      const out = interp.getSingularVectors(type, layer, { numVectors: n, headIndex: head ?? undefined })
      const g = gt(`svd.${mode}.${name}`)
      assertCloseUpToSign(t, out, g, TOL, `svd.${mode}.${name}`, 'cols', [g!.shape[0], n])
      // TL's positional order works too.
      const positional = interp.getSingularVectors(type, layer, n, head ?? undefined)
      assertCloseUpToSign(t, positional, g, TOL, `svd.${mode}.${name} (positional)`, 'cols', [g!.shape[0], n])
    }
  })
}

test('SVDInterpreter: defaults and argument errors', async (t) => {
  const m = await model('processed')
  const interp = new SVDInterpreter(m)
  t.deepEqual(interp.getSingularVectors('w_in', 0).shape, [m.cfg.d_vocab, 1, 10])
  throwsCode(t, () => interp.getSingularVectors('OV', 0), 'TL_INVALID_ARGUMENT')
  throwsCode(t, () => interp.getSingularVectors('OV', 3, { headIndex: 0 }), 'TL_INVALID_ARGUMENT')
  throwsCode(t, () => interp.getSingularVectors('OV', 0, { headIndex: 4 }), 'TL_INVALID_ARGUMENT')
  throwsCode(t, () => interp.getSingularVectors('OV', 0, { headIndex: 0, numVectors: 9 }), 'TL_INVALID_ARGUMENT')
  throwsCode(t, () => interp.getSingularVectors('nope' as SingularVectorType, 0), 'TL_INVALID_ARGUMENT')
})
