/**
 * The library against sweep_encoders.py's TL (and, for T5's decoder, HF) outputs (a dev tool,
 * not a test).
 *
 * Usage:  node --import tsx scripts/reference/sweep_encoder_compare.ts OUT_DIR [FILTER ...]
 *
 * For every OUT_DIR/{variant}/tl.json (FILTER substrings select variants), loads the variant's
 * checkpoint from OUT_DIR/{variant}/hub (HookedEncoder or HookedEncoderDecoder.fromPretrained)
 * and prints one row: tokens (and token types, masks) equal, cfg fields that differ from TL's,
 * max |diff| per key (logits of a prompt, a padded batch, a truncated long prompt; the worst
 * hook; NSP logits and hooks; predictions equal; T5: logits with a long decoder input, a padded
 * batch, a string, greedy generation equal). Where TL raised, the library must refuse the
 * checkpoint with TL_UNSUPPORTED or TL_CORRUPT_FILE. A JSON summary goes to OUT_DIR/encoder_compare.json.
 */
import * as path from 'node:path'

import { BertNextSentencePrediction, HookedEncoder, HookedEncoderDecoder, Tensor } from '../../src/index'
import { readSafetensors, type Golden } from '../../__test__/helpers/safetensors'
import { cfgDiffs, compareAll, maxDiff, REFUSALS, tensorOf } from './sweep_common'

const GEN = 6

type Row = Record<string, any>

const sameIds = (a: Tensor, g: Golden | undefined) => !!g && a.shape.join() === g.shape.join() && maxDiff(a, g) === 0

/** The worst hook ([name, max |diff|]), names missing from ours and extra. */
function worstHook(cache: { keys(): string[]; get(k: string): Tensor }, names: string[], g: Map<string, Golden>, prefix: string): [string, number] {
  const keys = cache.keys()
  const missing = names.filter((k) => !keys.includes(k))
  const extra = keys.filter((k) => !names.includes(k))
  if (missing.length || extra.length) return [`missing ${missing} extra ${extra}`, Infinity]
  if (JSON.stringify(keys) !== JSON.stringify(names)) return ['order differs', Infinity]
  let worst: [string, number] = ['', 0]
  for (const k of keys) {
    const d = maxDiff(cache.get(k), g.get(`${prefix}${k}`))
    if (!(d <= worst[1])) worst = [k, d]
  }
  return worst
}

async function compareBert(meta: any, opts: object, g: Map<string, Golden>, row: Row): Promise<void> {
  const m = await HookedEncoder.fromPretrained(meta.model_id, opts)
  try {
    row.cfg = cfgDiffs(m.cfg as any, meta.cfg)
    const inputs: [string, string | string[]][] = [['single', meta.inputs.single], ['batch', meta.inputs.batch], ['long', meta.inputs.long]]
    let tokensOk = true
    let logits = 0
    for (const [key, inp] of inputs) {
      const [tokens, tti, mask] = m.toTokens(inp)
      tokensOk &&= sameIds(tokens, g.get(`${key}.tokens`)) && sameIds(tti, g.get(`${key}.token_type_ids`)) && sameIds(mask, g.get(`${key}.attention_mask`))
      logits = Math.max(logits, maxDiff((await m.forward(inp)) as Tensor, g.get(`${key}.logits`)))
    }
    row.tokens = tokensOk
    row.logits = logits
    row.predictions = JSON.stringify([await m.forward(meta.inputs.single, { returnType: 'predictions' }), await m.forward(meta.inputs.batch, { returnType: 'predictions' })])
      === JSON.stringify([meta.predictions.single, meta.predictions.batch])
    const [, cache] = await m.runWithCache(meta.inputs.batch)
    row.hooks = worstHook(cache, meta.hook_names, g, 'cache.')
    const nsp = new BertNextSentencePrediction(m)
    let nspWorst = 0
    let nspOk = true
    for (const [i, pair] of (meta.inputs.pairs as string[][]).entries()) {
      const [tokens, tti] = nsp.toTokens(pair)
      nspOk &&= sameIds(tokens, g.get(`nsp${i}.tokens`)) && sameIds(tti, g.get(`nsp${i}.token_type_ids`))
      const [logits, c] = await nsp.runWithCache(pair)
      nspWorst = Math.max(nspWorst, maxDiff(logits as Tensor, g.get(`nsp${i}.logits`)))
      for (const k of ['pooler.hook_pooler_out', 'nsp_head.hook_nsp_out']) nspWorst = Math.max(nspWorst, maxDiff(c.get(k), g.get(`nsp${i}.cache.${k}`)))
      nspOk &&= (await nsp.forward(pair, { returnType: 'predictions' })) === meta.nsp_predictions[i]
    }
    row.nsp = nspWorst
    row.nsp_tokens_predictions = nspOk
  } finally {
    m.dispose()
  }
}

async function compareT5(meta: any, opts: object, g: Map<string, Golden>, row: Row): Promise<void> {
  const m = await HookedEncoderDecoder.fromPretrained(meta.model_id, opts)
  const t = (k: string) => tensorOf(g.get(k)!)
  try {
    row.cfg = cfgDiffs(m.cfg as any, meta.cfg)
    const [tokens, mask] = m.toTokens(meta.inputs.prompts[0])
    const [bt, bm] = m.toTokens(meta.inputs.prompts)
    row.tokens = sameIds(tokens, g.get('tokens')) && sameIds(mask, g.get('mask')) && sameIds(bt, g.get('batch.tokens'))
      && sameIds(bm, g.get('batch.mask')) && sameIds(m.toTokens(meta.inputs.long)[0], g.get('long.tokens'))
    const [logits, cache] = await m.runWithCache(t('tokens'), { decoderInput: t('decoder_input'), oneZeroAttentionMask: t('mask') })
    row.logits = maxDiff(logits, g.get('logits'))
    row.hooks = worstHook(cache, meta.hook_names, g, 'cache.')
    const [bl, bc] = await m.runWithCache(t('batch.tokens'), { decoderInput: t('batch.decoder_input'), oneZeroAttentionMask: t('batch.mask') })
    row.batch = maxDiff(bl, g.get('batch.logits'))
    row.batch_hooks = worstHook(bc, meta.hook_names, g, 'batch.cache.')
    row.str = maxDiff(await m.forward(meta.inputs.prompts[0]), g.get('str.logits'))
    const gen = await m.generate(t('batch.tokens'), { oneZeroAttentionMask: t('batch.mask'), maxNewTokens: GEN, doSample: false, stopAtEos: false })
    row.gen = sameIds(gen as Tensor, g.get('gen'))
  } finally {
    m.dispose()
  }
}

async function compareVariant(dir: string, meta: any): Promise<Row> {
  const opts = { cacheDir: path.join(dir, 'hub'), localFilesOnly: true }
  const row: Row = { variant: meta.variant, kind: meta.kind }
  if (meta.hf_error) return { ...row, skipped: `HF refuses: ${meta.hf_error}` }
  const tensors = path.join(dir, 'tl.safetensors')
  if (meta.tl_error) {
    // TL raised loading (the library must refuse to load) or in its first forward (the library
    // must throw there: the same tokens, and T5's decoder input, as TL's run).
    const run = meta.tl_error_stage === 'run'
    try {
      const m = meta.kind === 'bert' ? await HookedEncoder.fromPretrained(meta.model_id, opts) : await HookedEncoderDecoder.fromPretrained(meta.model_id, opts)
      try {
        if (!run) return { ...row, tl_error: meta.tl_error, ours: 'LOADED (TL raises)' }
        const g = readSafetensors(tensors)
        if (m instanceof HookedEncoder) await m.forward(meta.inputs.single)
        else await m.forward(tensorOf(g.get('tokens')!), { decoderInput: tensorOf(g.get('decoder_input')!), oneZeroAttentionMask: tensorOf(g.get('mask')!) })
        return { ...row, tl_error: meta.tl_error, ours: 'RAN (TL raises in forward)' }
      } finally {
        m.dispose()
      }
    } catch (e: any) {
      const ok = e.code && (run || REFUSALS.has(e.code))
      return { ...row, tl_error: meta.tl_error, ours: `${run ? 'forward: ' : ''}${e.code}${ok ? '' : ' (not a refusal code)'}: ${e.message}` }
    }
  }
  const g = readSafetensors(tensors)
  await (meta.kind === 'bert' ? compareBert : compareT5)(meta, opts, g, row)
  return row
}

function fmt(row: Row): string {
  if (row.skipped) return `${row.variant}: ${row.skipped}`
  if (row.tl_error) return `${row.variant}: TL raises (${String(row.tl_error).slice(0, 140)}) | ours: ${String(row.ours).slice(0, 200)}`
  const e = (x: number) => (Number.isFinite(x) ? x.toExponential(1) : String(x))
  const ok = (b: boolean) => (b ? 'ok' : 'DIFF')
  const parts = [row.variant, `tokens ${ok(row.tokens)}`, `logits ${e(row.logits)}`, `hooks ${e(row.hooks[1])} (${row.hooks[0]})`]
  if (row.kind === 'bert') parts.push(`predictions ${ok(row.predictions)}`, `nsp ${e(row.nsp)}`, `nsp tokens/pred ${ok(row.nsp_tokens_predictions)}`)
  else parts.push(`batch ${e(row.batch)}`, `batch hooks ${e(row.batch_hooks[1])} (${row.batch_hooks[0]})`, `str ${e(row.str)}`, `gen ${ok(row.gen)}`)
  if (row.cfg.length) parts.push(`cfg: ${row.cfg.join('; ')}`)
  return parts.join(' | ')
}

compareAll(compareVariant, fmt, 'encoder_compare.json').catch((e) => {
  console.error(e)
  process.exit(1)
})
