/**
 * `getPretrainedModelConfig` against TL's `get_pretrained_model_config` (goldens from
 * scripts/reference/make_config_fixtures.py): every Llama config TL hard-codes (no file read),
 * and the fixture checkpoints' configs read from config.json, with TL's options.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'

import test from 'ava'

import { getPretrainedModelConfig, HookedTransformer, TransformerLensError } from '../src/index'
import { FIXTURES, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

interface Case {
  name: string
  kwargs: Record<string, unknown>
  cfg: Record<string, unknown>
}
const { cases } = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'golden', 'registry', 'pretrained_configs.json'), 'utf8')) as { cases: Case[] }

/** TL's cfg with its torch dtype as this library names it. */
function expected(c: Case): Record<string, unknown> {
  return { ...c.cfg, dtype: String(c.cfg.dtype).replace('torch.', '') }
}

for (const [i, c] of cases.entries()) {
  test(`#${i} getPretrainedModelConfig(${c.name}, ${JSON.stringify(c.kwargs)}) is TL's`, async (t) => {
    // TL's snake_case option names are accepted as they are.
    const cfg = await getPretrainedModelConfig(c.name, { ...c.kwargs, device: 'cpu' } as never)
    const want = expected(c)
    t.deepEqual(Object.keys(cfg).sort(), Object.keys(want).sort())
    for (const k of Object.keys(want)) t.deepEqual(cfg[k], want[k], `cfg.${k}`)
  })
}

test('a hard-coded Llama config needs no file; other names need their config.json (offline: TL_MISSING_FILE)', async (t) => {
  const llama = await getPretrainedModelConfig('meta-llama/Llama-3.2-1B')
  t.is(llama.use_NTK_by_parts_rope, true)
  const e = await t.throwsAsync(getPretrainedModelConfig('gpt2-xl'))
  t.is((e as TransformerLensError).code, 'TL_MISSING_FILE')
  t.is(((await t.throwsAsync(getPretrainedModelConfig('no-such-model'))) as TransformerLensError).code, 'TL_UNKNOWN_MODEL')
  t.is(((await t.throwsAsync(getPretrainedModelConfig('gpt2', { checkpointIndex: 1 }))) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  t.is(((await t.throwsAsync(getPretrainedModelConfig('EleutherAI/pythia-70m', { checkpointValue: 3 }))) as TransformerLensError).code, 'TL_INVALID_ARGUMENT')
  t.is(((await t.throwsAsync(getPretrainedModelConfig('gpt2', { nDevices: 2 }))) as TransformerLensError).code, 'TL_UNSUPPORTED')
})

test('a loaded model has the config getPretrainedModelConfig gives (fold_ln as loaded)', async (t) => {
  for (const name of ['gpt2', 'EleutherAI/pythia-70m', '01-ai/Yi-6B']) {
    const m = await HookedTransformer.fromPretrained(name)
    const cfg = await getPretrainedModelConfig(name, { foldLn: true })
    // The loaded model also knows what its tokenizer does.
    t.deepEqual({ ...cfg, tokenizer_prepends_bos: m.cfg.tokenizer_prepends_bos }, m.cfg, name)
    m.dispose()
  }
})
