/** A one-line progress bar on stderr (`[#####.....] 12/40 3.1 it/s loss 2.31`), redrawn in place. */
export class Progress {
  readonly #total: number
  readonly #label: string
  readonly #start = Date.now()
  #done = 0
  #last = 0

  constructor(total: number, label: string) {
    this.#total = Math.max(1, total)
    this.#label = label
  }

  /** One unit of work done; `note` is shown after the counts. */
  tick(note = ''): void {
    this.#done++
    const now = Date.now()
    if (now - this.#last < 100 && this.#done < this.#total) return
    this.#last = now
    const width = 24
    const filled = Math.min(width, Math.round((this.#done / this.#total) * width))
    const rate = this.#done / Math.max(1e-3, (now - this.#start) / 1000)
    const line = `${this.#label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.#done}/${this.#total} ${rate.toFixed(1)} it/s ${note}`
    process.stderr.write(`\r${line.slice(0, (process.stderr.columns ?? 100) - 1)}\x1b[K`)
  }

  /** Clears the line (before printing something else). */
  clear(): void {
    process.stderr.write('\r\x1b[K')
  }

  done(): void {
    this.clear()
  }
}
