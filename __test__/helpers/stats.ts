/** Summary statistics of a sample (population std). */
export function sampleStats(x: ArrayLike<number>): { mean: number; std: number; min: number; max: number; maxAbs: number } {
  let sum = 0
  let min = Infinity
  let max = -Infinity
  for (let i = 0; i < x.length; i++) {
    sum += x[i]
    min = Math.min(min, x[i])
    max = Math.max(max, x[i])
  }
  const mean = sum / x.length
  let sq = 0
  for (let i = 0; i < x.length; i++) sq += (x[i] - mean) ** 2
  return { mean, std: Math.sqrt(sq / x.length), min, max, maxAbs: Math.max(-min, max) }
}
