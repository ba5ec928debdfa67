/**
 * The library against sweep_families.py's TL outputs (a dev tool, not a test).
 *
 * Usage:  node --import tsx scripts/reference/sweep_compare.ts OUT_DIR [FILTER ...]
 *
 * For every OUT_DIR/{variant}/tl.json (FILTER substrings select variants), loads the variant's
 * checkpoint from OUT_DIR/{variant}/hub with fromPretrained and fromPretrainedNoProcessing and
 * prints one row: toTokens equal, cfg fields that differ from TL's, max |diff| of processed and
 * unprocessed logits (single prompt, right- and left-padded batch), of the unprocessed cache
 * (worst hook), of the processed logits with each processing step off, and whether greedy generate (each prompt alone, and the left-padded batch, whose
 * rows must continue as their prompts alone) equals TL's. Where TL raised, the library must
 * refuse the checkpoint with TL_UNSUPPORTED or TL_CORRUPT_FILE. A JSON summary goes to
 * OUT_DIR/compare.json.
 */
import * as path from 'node:path'

import { HookedTransformer, Tensor } from '../../src/index'
import { readSafetensors, type Golden } from '../../__test__/helpers/safetensors'
import { cfgDiffs, compareAll, maxDiff, REFUSALS } from './sweep_common'

const NEW = 8
const SWITCHES = [['fold_ln', 'foldLn'], ['center_writing_weights', 'centerWritingWeights'], ['center_unembed', 'centerUnembed'], ['fold_value_biases', 'foldValueBiases']]

function ids(g: Golden | undefined): number[] {
  return g ? Array.from(g.data as BigInt64Array, Number) : []
}

function sameIds(a: Tensor, g: Golden | undefined): boolean {
  return JSON.stringify((a.toList() as number[][]).flat()) === JSON.stringify(ids(g))
}

async function compareVariant(dir: string, meta: any): Promise<Record<string, unknown>> {
  const hub = path.join(dir, 'hub')
  const opts = { cacheDir: hub, localFilesOnly: true }
  const row: Record<string, unknown> = { variant: meta.variant }
  if (meta.hf_error) return { ...row, skipped: `HF refuses: ${meta.hf_error}` }
  if (meta.tl_error) {
    try {
      const m = await HookedTransformer.fromPretrainedNoProcessing(meta.model_id, opts)
      m.dispose()
      return { ...row, tl_error: meta.tl_error, ours: 'LOADED (TL raises)' }
    } catch (e: any) {
      return { ...row, tl_error: meta.tl_error, ours: `${e.code}${REFUSALS.has(e.code) ? '' : ' (not a refusal code)'}: ${e.message}` }
    }
  }
  const g = readSafetensors(path.join(dir, 'tl.safetensors'))
  const prompts: string[] = meta.prompts
  for (const mode of ['processed', 'unprocessed'] as const) {
    const m = mode === 'processed'
      ? await HookedTransformer.fromPretrained(meta.model_id, opts)
      : await HookedTransformer.fromPretrainedNoProcessing(meta.model_id, opts)
    try {
      row[`${mode}.cfg`] = cfgDiffs(m.cfg as any, meta[`${mode}.cfg`])
      const single = m.toTokens(prompts[0])
      row.tokens = sameIds(single, g.get('tokens.single')) && sameIds(m.toTokens(prompts), g.get('tokens.batch'))
        && sameIds(m.toTokens(prompts, { paddingSide: 'left' }), g.get('tokens.left'))
      row[`${mode}.logits`] = Math.max(
        maxDiff((await m.forward(single)) as Tensor, g.get(`${mode}.logits.single`)),
        maxDiff((await m.forward(prompts)) as Tensor, g.get(`${mode}.logits.batch`)),
        maxDiff((await m.forward(prompts, { paddingSide: 'left' })) as Tensor, g.get(`${mode}.logits.left`)))
      if (mode === 'unprocessed') {
        const [, cache] = await m.runWithCache(single)
        const keys = cache.keys()
        row.hooks_missing = meta.hook_names.filter((k: string) => !keys.includes(k))
        row.hooks_extra = keys.filter((k) => !meta.hook_names.includes(k))
        let worst = ['', 0] as [string, number]
        for (const k of keys.filter((k) => meta.hook_names.includes(k))) {
          const d = maxDiff(cache.get(k), g.get(`cache.${k}`))
          if (!(d <= worst[1])) worst = [k, d]
        }
        row.hooks = worst
        cache.dispose()
      } else {
        const o = { maxNewTokens: NEW, doSample: false, stopAtEos: false, useKvCache: true, returnType: 'tokens' as const }
        const singles = await Promise.all(prompts.map((p) => m.generate(p, o) as Promise<Tensor>))
        const nokv = (await m.generate(prompts[0], { ...o, useKvCache: false })) as Tensor
        row.gen_single = singles.every((s, i) => sameIds(s, g.get(`gen${i}`))) && (!g.get('gen0.nokv') || sameIds(nokv, g.get('gen0.nokv')))
        const batch = (await m.generate(prompts, { ...o, paddingSide: 'left' })) as Tensor
        const rows = batch.toList() as number[][]
        row.gen_left_batch = rows.every((r, i) => JSON.stringify(r.slice(-NEW)) === JSON.stringify(ids(g.get(`gen${i}`)).slice(-NEW)))
        row.options = await processingOptions(meta.model_id, opts, single, g)
        row.flags = await flagHooks(m, meta, single, g, 'flags')
        const fresh = await HookedTransformer.fromPretrained(meta.model_id, opts)
        row.attn_in = await flagHooks(fresh, meta, single, g, 'attn_in')
        fresh.dispose()
        row.bwd = await backward(meta, opts, single, g)
      }
    } finally {
      m.dispose()
    }
  }
  return row
}

/** The worst hook of the cache with TL's setters of `stem` on ([name, max |diff|]), or what is missing. */
async function flagHooks(m: HookedTransformer, meta: any, tokens: Tensor, g: Map<string, Golden>, stem: string): Promise<[string, number]> {
  const names: string[] | undefined = meta[`${stem}_hook_names`]
  const setters: Record<string, (on: boolean) => void> = {
    set_use_attn_result: (on) => m.setUseAttnResult(on), set_use_split_qkv_input: (on) => m.setUseSplitQkvInput(on),
    set_use_hook_mlp_in: (on) => m.setUseHookMlpIn(on), set_ungroup_grouped_query_attention: (on) => m.setUngroupGroupedQueryAttention(on),
    set_use_attn_in: (on) => m.setUseAttnIn(on),
  }
  if (!names) {
    // TL raised: the same setters must throw here too.
    try {
      for (const s of meta[`${stem}_setters`] as string[]) setters[s](true)
    } catch (e: any) {
      return [`refused as TL (${e.code})`, 0]
    }
    return [`accepted; TL: ${meta[`${stem}_error`]}`, Infinity]
  }
  for (const s of meta[`${stem}_setters`] as string[]) setters[s](true)
  const [, cache] = await m.runWithCache(tokens)
  const keys = cache.keys()
  const missing = names.filter((k) => !keys.includes(k))
  let worst: [string, number] = missing.length ? [`missing ${missing.join(',')}`, Infinity] : ['', 0]
  for (const k of keys.filter((k) => names.includes(k))) {
    const d = maxDiff(cache.get(k), g.get(`${stem}.${k}`))
    if (!(d <= worst[1])) worst = [k, d]
  }
  cache.dispose()
  return worst
}

/** The worst entry of the incl_bwd cache of the loss (activations and `*_grad`), on a fresh model. */
async function backward(meta: any, opts: object, tokens: Tensor, g: Map<string, Golden>): Promise<[string, number]> {
  if (!meta.bwd_keys) return ['no TL golden', NaN]
  const m = await HookedTransformer.fromPretrained(meta.model_id, opts)
  const [loss, cache] = await m.runWithCache(tokens, { returnType: 'loss', inclBwd: true })
  const keys = cache.keys()
  let worst: [string, number] = JSON.stringify(keys) === JSON.stringify(meta.bwd_keys) ? ['loss', maxDiff(loss as Tensor, g.get('bwd.loss'))] : ['keys differ', Infinity]
  for (const k of keys.filter((k) => meta.bwd_keys.includes(k))) {
    const d = maxDiff(cache.get(k), g.get(`bwd.${k}`))
    if (!(d <= worst[1])) worst = [k, d]
  }
  cache.dispose()
  m.dispose()
  return worst
}

/** Max |diff| of the single prompt's logits with each processing step off (TL's keywords). */
async function processingOptions(model: string, opts: object, tokens: Tensor, g: Map<string, Golden>): Promise<number> {
  let worst = 0
  for (const [key, name] of SWITCHES) {
    const want = g.get(`${key}_off.logits.single`)
    if (!want) continue
    const m = await HookedTransformer.fromPretrained(model, { ...opts, [name]: false })
    worst = Math.max(worst, maxDiff((await m.forward(tokens)) as Tensor, want))
    m.dispose()
  }
  return worst
}

function fmt(row: Record<string, any>): string {
  if (row.skipped) return `${row.variant}: ${row.skipped}`
  if (row.tl_error) return `${row.variant}: TL raises (${String(row.tl_error).slice(0, 120)}) | ours: ${String(row.ours).slice(0, 160)}`
  const e = (x: number) => (Number.isFinite(x) ? x.toExponential(1) : String(x))
  const cfg = [...new Set([...(row['processed.cfg'] ?? []), ...(row['unprocessed.cfg'] ?? [])])]
  return [
    row.variant, `tokens ${row.tokens ? 'ok' : 'DIFF'}`, `proc ${e(row['processed.logits'])}`,
    `unproc ${e(row['unprocessed.logits'])}`, `options ${e(row.options)}`, `hooks ${e(row.hooks[1])} (${row.hooks[0]})`, `flags ${e(row.flags[1])} (${row.flags[0]})`, `attn_in ${e(row.attn_in[1])} (${row.attn_in[0]})`, `bwd ${e(row.bwd[1])} (${row.bwd[0]})`,
    `gen ${row.gen_single ? 'ok' : 'DIFF'}`, `left-batch gen ${row.gen_left_batch ? 'ok' : 'DIFF'}`,
    row.hooks_missing.length || row.hooks_extra.length ? `hooks missing ${row.hooks_missing} extra ${row.hooks_extra}` : '',
    cfg.length ? `cfg: ${cfg.join('; ')}` : '',
  ].filter(Boolean).join(' | ')
}

const PROMPTS = ['The quick brown fox jumps over the lazy dog. It was a sunny day.', 'Hello world, this is a test']

compareAll((dir, meta) => compareVariant(dir, { prompts: PROMPTS, ...meta }), fmt, 'compare.json').catch((e) => {
  console.error(e)
  process.exit(1)
})
