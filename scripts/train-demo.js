#!/usr/bin/env node
// Trains the embedded demo model: a 2-layer attention-only transformer on sequences of random
// words repeated once, where induction heads form. Deterministic (seeded init and data);
// about a minute on 2 CPU cores. `npm run train:demo` (needs `npm run build:ts` first).
// Writes models/demo-induction/ (TL-format folder: config.json, model.safetensors, tokenizer).
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { HookedTransformer, PyRandom, Tensor, train } = require('../dist/index.js')
const { DEMO_WORDS, HALF, MIN_REPEAT } = require('../examples/demo-data.js')

const OUT = process.env.DEMO_MODEL_OUT ?? path.join(__dirname, '..', 'models', 'demo-induction')

/** A WordLevel tokenizer over the demo words (id 0 is BOS). */
function tokenizerJson() {
  const vocab = { '<|BOS|>': 0 }
  DEMO_WORDS.forEach((w, i) => (vocab[w] = i + 1))
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: 0, content: '<|BOS|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '<|BOS|>' },
  }
}

/**
 * `n` rows of BOS, L random words, the same L words again, then fresh random words to fill
 * the context; L varies per row (MIN_REPEAT..HALF), so only content (induction), not a fixed
 * offset, predicts the repeats.
 */
function dataset(n, seed) {
  const rng = new PyRandom(seed)
  const len = 1 + 2 * HALF
  const word = () => BigInt(rng.randrange(1, DEMO_WORDS.length + 1))
  const data = new BigInt64Array(n * len)
  for (let r = 0; r < n; r++) {
    const row = r * len
    const L = rng.randrange(MIN_REPEAT, HALF + 1)
    data[row] = 0n
    for (let j = 0; j < L; j++) {
      const w = word()
      data[row + 1 + j] = w
      data[row + 1 + L + j] = w
    }
    for (let j = 1 + 2 * L; j < len; j++) data[row + j] = word()
  }
  return Tensor.from(data, [n, len])
}

async function main() {
  const tokDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tl-demo-tok-'))
  fs.writeFileSync(path.join(tokDir, 'tokenizer.json'), JSON.stringify(tokenizerJson()))
  const special = JSON.stringify({ bos_token: '<|BOS|>', eos_token: '<|BOS|>', pad_token: '<|BOS|>' })
  fs.writeFileSync(path.join(tokDir, 'tokenizer_config.json'), special)
  fs.writeFileSync(path.join(tokDir, 'special_tokens_map.json'), special)

  const cfg = {
    model_name: 'demo-induction-2l',
    n_layers: 2,
    d_model: 64,
    d_head: 16,
    n_heads: 4,
    n_ctx: 1 + 2 * HALF,
    d_vocab: DEMO_WORDS.length + 1,
    attn_only: true,
    normalization_type: 'LN',
    positional_embedding_type: 'standard',
    init_mode: 'gpt2',
    seed: 0,
  }
  const model = HookedTransformer.fromConfig(cfg)
  await model.setTokenizer(tokDir)
  const data = dataset(64000, 1)
  const t0 = Date.now()
  const { losses } = await train(model, {
    numEpochs: 1,
    batchSize: 32,
    lr: 3e-3,
    optimizerName: 'AdamW',
    weightDecay: 0.01,
    warmupSteps: 50,
    maxGradNorm: 1.0,
    seed: 0,
    printEvery: 100,
  }, data)
  const secs = (Date.now() - t0) / 1000
  const tail = losses.slice(-50)
  console.log(`trained ${losses.length} steps in ${secs.toFixed(1)} s; mean loss of the last 50 steps ${(tail.reduce((a, b) => a + b, 0) / tail.length).toFixed(4)}`)
  fs.rmSync(OUT, { recursive: true, force: true })
  model.save(OUT)
  console.log(`wrote ${OUT}`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
