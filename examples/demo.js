#!/usr/bin/env node
// A tour on the tiny GPT-2 embedded in the repo (random weights, 512-token vocabulary): no
// network. `npm run demo`
'use strict'
const path = require('node:path')

process.env.HF_HUB_CACHE = process.env.HF_HUB_CACHE ?? path.join(__dirname, '..', '__test__', 'fixtures', 'hub')
process.env.HF_HUB_OFFLINE = '1'

const { HookedTransformer } = require('../dist/index.js')

async function main() {
  const model = await HookedTransformer.fromPretrained('gpt2')
  const { n_layers, d_model, n_heads, d_vocab, normalization_type } = model.cfg
  console.log(`Loaded gpt2 (tiny): ${n_layers} layers, d_model ${d_model}, ${n_heads} heads, vocab ${d_vocab}, ${normalization_type}`)

  const prompt = 'The quick brown fox jumps over the lazy dog.'
  console.log('tokens:', JSON.stringify(model.toStrTokens(prompt)))

  const [logits, cache] = await model.runWithCache(prompt)
  const loss = await model.forward(prompt, { returnType: 'loss' })
  console.log(`logits ${JSON.stringify(logits.shape)}, loss ${loss.item().toFixed(4)}, ${cache.size} cached activations`)
  const pattern = cache.get('pattern', 0)
  console.log(`blocks.0.attn.hook_pattern ${JSON.stringify(pattern.shape)}; head 0 attends from the last token to:`,
    Array.from(pattern.get(0, 0, -1).toArray(), (p) => p.toFixed(2)).join(' '))

  // Zero-ablate head 0 of layer 0 with a hook and watch the loss move.
  const ablated = await model.runWithHooks(prompt, {
    returnType: 'loss',
    fwdHooks: [['blocks.0.attn.hook_z', (z) => z.sliceAssign([null, null, 0], 0)]],
  })
  console.log(`loss with L0H0 ablated: ${ablated.item().toFixed(4)}`)

  const [top, ids] = logits.get(0, -1).topk(5)
  console.log('top next tokens:', Array.from(ids.toArray(), (id, i) => `${JSON.stringify(model.toString([Number(id)]))} ${top.toArray()[i].toFixed(2)}`).join(', '))
  cache.dispose()
  model.dispose()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
