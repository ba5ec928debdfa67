import { TransformerLensError } from '../errors'
import type { HookedTransformer } from '../model/hooked-transformer'
import { opt } from '../model/options'
import { Tensor } from '../tensor'

export interface TestPromptOptions {
  /** Prepend a space to each answer that lacks one (default true). */
  prependSpaceToAnswer?: boolean
  /** Print the tokenization, the answer's rank/logit/prob and the top-k tokens (default true). */
  printDetails?: boolean
  prependBos?: boolean
  /** How many top tokens to print per answer position (default 10). */
  topK?: number
  /** Where lines go (default console.log). */
  print?: (line: string) => void
}

/** Python's `repr` of a string, as TL's printed lists show tokens. */
export function pyRepr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'"
  const body = s
    .replace(/\\/g, '\\\\')
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t')
    .replace(q === "'" ? /'/g : /"/g, `\\${q}`)
  return q + body + q
}

const pyList = (xs: string[]): string => `[${xs.map(pyRepr).join(', ')}]`
const pct = (p: number): string => `${(p * 100).toFixed(2)}%`.padStart(6)
const f52 = (x: number): string => x.toFixed(2).padStart(5)

/**
 * TL's `utils.test_prompt`: how the model ranks `answer` (or each of several one-token answers)
 * after `prompt`. Prints what TL prints and also returns the ranks: for one answer, one rank
 * per answer token; for several, `[token, rank]` pairs per position.
 */
export async function testPrompt(
  prompt: string,
  answer: string | string[],
  model: HookedTransformer,
  options: TestPromptOptions = {},
): Promise<Array<number> | Array<Array<[string, number]>>> {
  const print = opt<(l: string) => void>(options, 'print', (l) => console.log(l))
  const details = opt(options, 'printDetails', true)
  const topK = opt(options, 'topK', 10)
  const prependBos = opt<boolean | undefined>(options, 'prependBos', undefined)
  let answers = typeof answer === 'string' ? [answer] : [...answer]
  if (answers.length === 0) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'testPrompt needs at least one answer')
  const multi = answers.length > 1
  if (opt(options, 'prependSpaceToAnswer', true)) answers = answers.map((a) => (a.startsWith(' ') ? a : ' ' + a))

  let answerTokens = model.toTokens(answers, { prependBos: false })
  if (multi) answerTokens = answerTokens.get(null, [0, 1])
  const n = answers.length
  const promptTokens = model.toTokens(prompt, { prependBos })
  const tokens = Tensor.cat([Tensor.cat(new Array(n).fill(promptTokens), 0), answerTokens], 1)
  const promptStr = model.toStrTokens(prompt, { prependBos })
  const answerStr = answers.map((a) => model.toStrTokens(a, { prependBos: false }))
  const promptLen = promptStr.length
  const answerLen = multi ? 1 : answerStr[0].length
  if (details) {
    print(`Tokenized prompt: ${pyList(promptStr)}`)
    print(multi ? `Tokenized answers: [${answerStr.map(pyList).join(', ')}]` : `Tokenized answer: ${pyList(answerStr[0])}`)
  }
  const logits = await model.forward(tokens)
  const ranks: Array<Array<[string, number]>> = []
  for (let index = promptLen; index < promptLen + answerLen; index++) {
    const row = logits.get(null, index - 1) // [n, vocab]
    const probs = row.softmax(-1)
    const ids = Array.from(tokens.get(null, index).toArray() as BigInt64Array, Number)
    const ans = Tensor.from(BigInt64Array.from(ids, BigInt), [n, 1])
    const ansProb = probs.gather(1, ans) // [n, 1]
    // Rank = how many tokens are strictly more probable (0 is the top token).
    const rank = Array.from(probs.gt(ansProb).float().sum(-1).toArray() as Float32Array, Math.round)
    const ansLogit = Array.from(row.gather(1, ans).toArray() as Float32Array)
    const pAns = Array.from(ansProb.toArray() as Float32Array)
    const strs = answerStr.map((a) => a[index - promptLen])
    ranks.push(strs.map((s, i) => [s, rank[i]]))
    if (details) {
      print(`Performance on answer token${n > 1 ? 's' : ''}:`)
      for (let i = 0; i < n; i++) print(`Rank: ${String(rank[i]).padEnd(8)} Logit: ${f52(ansLogit[i])} Prob: ${pct(pAns[i])} Token: |${strs[i]}|`)
      const [topP, topI] = probs.get(0).topk(topK)
      const tp = Array.from(topP.toArray() as Float32Array)
      const ti = Array.from(topI.toArray() as ArrayLike<number | bigint>, Number)
      const tl = Array.from(row.get(0).indexSelect(0, topI).toArray() as Float32Array)
      for (let i = 0; i < topK; i++) {
        print(`Top ${i}th token. Logit: ${f52(tl[i])} Prob: ${pct(tp[i])} Token: |${model.toString([ti[i]])}|`)
      }
    }
  }
  if (!multi) {
    const single = ranks.map((r) => r[0][1])
    // TL prints `(token, rank)` tuples here too.
    print(`Ranks of the answer tokens: [${ranks.map((r) => `(${pyRepr(r[0][0])}, ${r[0][1]})`).join(', ')}]`)
    return single
  }
  print(`Ranks of the answer tokens: [${ranks.map((r) => `[${r.map(([s, k]) => `(${pyRepr(s)}, ${k})`).join(', ')}]`).join(', ')}]`)
  return ranks
}
