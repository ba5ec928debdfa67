'use strict'
// Shared settings of the decode benchmark (mirrored in decode_tl.py).
const NEW_TOKENS = 128
const PROMPT_LEN = 16
const BATCHES = [1, 8]

// Row r: ids (r * 31 + i * 17) % 500, the same in Python.
function promptIds(batch) {
  const out = new BigInt64Array(batch * PROMPT_LEN)
  for (let r = 0; r < batch; r++) for (let i = 0; i < PROMPT_LEN; i++) out[r * PROMPT_LEN + i] = BigInt((r * 31 + i * 17) % 500)
  return out
}

module.exports = { NEW_TOKENS, PROMPT_LEN, BATCHES, promptIds }
