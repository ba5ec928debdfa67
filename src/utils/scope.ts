import type { Tensor } from '../tensor'

/**
 * Temporaries of one computation: `keep(t)` registers a tensor to free when the scope closes.
 * What the computation returns is not registered, so it outlives the scope.
 * @internal
 */
export class TensorScope {
  #temps: Tensor[] = []

  keep<T extends Tensor>(t: T): T {
    this.#temps.push(t)
    return t
  }

  keepAll<T extends Tensor>(ts: T[]): T[] {
    for (const t of ts) this.#temps.push(t)
    return ts
  }

  dispose(): void {
    for (const t of this.#temps) t.dispose()
    this.#temps = []
  }
}

/** Runs `fn` with a scope whose tensors are freed afterwards (also when `fn` throws). @internal */
export function withScope<R>(fn: (s: TensorScope) => R): R {
  const s = new TensorScope()
  try {
    return fn(s)
  } finally {
    s.dispose()
  }
}
