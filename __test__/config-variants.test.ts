/**
 * Config variants of the family fixtures that TL 2.16.1 cannot load (it raises while converting
 * the weights or building the config): the library refuses them with a coded error naming the
 * config.json field, rather than computing numbers TL has no answer for. Found by
 * scripts/reference/sweep_families.py, which also covers the variants TL loads.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

import test from 'ava'

import { HookedTransformer, TransformerLensError } from '../src/index'
import { HUB, useFixtureHub } from './helpers/fixtures'

useFixtureHub()

const copies: string[] = []
test.after.always(() => copies.forEach((d) => fs.rmSync(d, { recursive: true, force: true })))

/** A copy of `model`'s fixture snapshot with `edit` applied to its config.json. */
function variant(model: string, edit: (cfg: any) => void): string {
  const repo = path.join(HUB, `models--${model.replace('/', '--')}`)
  const snap = path.join(repo, 'snapshots', fs.readFileSync(path.join(repo, 'refs', 'main'), 'utf8').trim())
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-variant-'))
  copies.push(dir)
  for (const f of fs.readdirSync(snap)) fs.copyFileSync(path.join(snap, f), path.join(dir, f))
  const file = path.join(dir, 'config.json')
  const cfg = JSON.parse(fs.readFileSync(file, 'utf8'))
  edit(cfg)
  fs.writeFileSync(file, JSON.stringify(cfg))
  return dir
}

/** (model, config.json edit, the field the error must name), each one TL raises on. */
const REFUSED: [string, (cfg: any) => void, RegExp][] = [
  // TL's d_mlp is 4 * d_model whatever the file says; its state dict then does not fit.
  ['gpt2', (c) => (c.n_inner = 64), /n_inner/],
  ['EleutherAI/gpt-neo-125M', (c) => (c.intermediate_size = 64), /intermediate_size/],
  ['EleutherAI/gpt-j-6B', (c) => (c.n_inner = 64), /n_inner/],
  // TL's conversions read the biases these switches remove.
  ['EleutherAI/pythia-70m', (c) => (c.attention_bias = false), /attention_bias/],
  ['facebook/opt-125m', (c) => (c.enable_bias = false), /enable_bias/],
  // Dicts that take d_head = hidden_size / num_attention_heads, and Phi's K/V heads = n_heads.
  ['01-ai/Yi-6B', (c) => (c.head_dim = 12), /head_dim/],
  ['Qwen/Qwen2-0.5B', (c) => (c.head_dim = 12), /head_dim/],
  ['mistralai/Mixtral-8x7B-v0.1', (c) => (c.head_dim = 12), /head_dim/],
  ['microsoft/phi-2', (c) => (c.num_key_value_heads = 2), /num_key_value_heads/],
  // HF's alias of silu, not one of TL's activation names.
  ['gpt2', (c) => (c.activation_function = 'swish'), /swish/],
]

for (const [model, edit, names] of REFUSED) {
  test(`${model} with ${names.source} as TL cannot load it is refused with TL_UNSUPPORTED`, async (t) => {
    const dir = variant(model, edit)
    for (const load of [HookedTransformer.fromPretrained, HookedTransformer.fromPretrainedNoProcessing]) {
      const e = await t.throwsAsync(load.call(HookedTransformer, dir))
      t.true(e instanceof TransformerLensError)
      t.is((e as TransformerLensError).code, 'TL_UNSUPPORTED', e?.message)
      t.regex(e?.message ?? '', names)
    }
  })
}

test('sizes equal to what TL takes still load (as real configs state them)', async (t) => {
  const gpt2 = await HookedTransformer.fromPretrained(variant('gpt2', (c) => (c.n_inner = 4 * c.n_embd)))
  t.is(gpt2.cfg.d_mlp, 128)
  gpt2.dispose()
  const yi = await HookedTransformer.fromPretrained(variant('01-ai/Yi-6B', (c) => (c.head_dim = 8)))
  t.is(yi.cfg.d_head, 8)
  yi.dispose()
  const phi = await HookedTransformer.fromPretrained(variant('microsoft/phi-2', (c) => (c.num_key_value_heads = 4)))
  t.is(phi.cfg.n_heads, 4)
  phi.dispose()
})
