/**
 * Run in a child process by memory.test.ts: allocates far more native memory than the limit
 * through tensors, forwards and caches that are never disposed, and prints the peak RSS growth.
 * Native memory is reported to V8 as external memory, so the GC must reclaim it.
 */
import { HookedTransformer, Tensor } from '../../src/index'
import { useFixtureHub } from './fixtures'

useFixtureHub()

async function main(): Promise<void> {
  const model = await HookedTransformer.fromPretrained('gpt2')
  const tokens = model.toTokens('The quick brown fox jumps over the lazy dog')
  for (let i = 0; i < 5; i++) await model.runWithCache(tokens)
  const base = process.memoryUsage().rss
  let peak = base
  for (let i = 0; i < 400; i++) {
    // 8 MiB per iteration (3.2 GiB in all), never disposed.
    const big = Tensor.zeros([2048, 1024]).add(1)
    big.sum()
    await model.runWithCache(tokens)
    if (i % 20 === 0) peak = Math.max(peak, process.memoryUsage().rss)
  }
  peak = Math.max(peak, process.memoryUsage().rss)
  console.log(JSON.stringify({ growthMiB: (peak - base) / 2 ** 20 }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
