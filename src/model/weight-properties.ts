import { TransformerLensError } from '../errors'
import { FactoredMatrix } from '../factored-matrix'
import { FlaggedModule } from '../hooks/flagged-module'
import { Tensor } from '../tensor'
import * as circuits from './circuits'
import type { HookedTransformer } from './hooked-transformer'
import * as weights from './weights'

/**
 * TL's `embed.ln` (`post_embedding_ln`, Bloom) on `x`, which it disposes: TL's LayerNorm,
 * `(x - mean) / sqrt(mean((x - mean)^2) + eps) * w + b` over d_model.
 */
function embedLn(model: HookedTransformer, x: Tensor): Tensor {
  const w = weights.param(model, 'embed.ln.w')
  const b = weights.param(model, 'embed.ln.b')
  const temps: (Tensor | null)[] = [x, w, b]
  const keep = (t: Tensor): Tensor => (temps.push(t), t)
  try {
    if (w === null || b === null) throw new TransformerLensError('TL_MISSING_WEIGHT', 'post_embedding_ln is set but the model has no embed.ln.w / embed.ln.b')
    const centered = keep(x.sub(keep(x.mean(-1, { keepdim: true }))))
    const scale = keep(keep(keep(centered.pow(2)).mean(-1, { keepdim: true })).add(model.cfg.eps as number).sqrt())
    return keep(keep(centered.div(scale)).mul(w)).add(b)
  } finally {
    for (const t of temps) t?.dispose()
  }
}

/**
 * TL's weight properties and circuit views of `HookedTransformer` (`W_Q` ... `W_U`,
 * `accumulated_bias`, `QK`, `OV`, ...): the getters, over the functions in ./weights.ts and
 * ./circuits.ts. `HookedTransformer` extends this class.
 */
export abstract class WeightProperties extends FlaggedModule {
  get #model(): HookedTransformer {
    return this as unknown as HookedTransformer
  }

  // ---- weight properties (TL's W_Q ... W_U, stacked over layers; see ./weights.ts) ----
  // Each getter returns a new Tensor the caller owns (no copy of the weights).

  /** `[d_model, d_vocab]` */
  get W_U(): Tensor {
    return weights.W_U(this.#model)
  }
  /** `[d_vocab]` */
  get b_U(): Tensor {
    return weights.b_U(this.#model)
  }
  /** `[d_vocab, d_model]` */
  get W_E(): Tensor {
    return weights.W_E(this.#model)
  }
  /**
   * TL's `model.embed(tokens)`: `[batch, pos]` token ids → `[batch, pos, d_model]` rows of W_E
   * (no positional embedding; what `hook_embed` sees, and what `generate` takes as embeddings).
   */
  embed(tokens: Tensor): Tensor {
    if (tokens.ndim !== 2 || tokens.isFloatingPoint()) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `embed takes [batch, pos] integer tokens, got ${tokens.dtype} [${tokens.shape}]`)
    }
    const [b, p] = tokens.shape
    const we = this.W_E
    try {
      const flat = tokens.reshape([b * p])
      const rows = we.indexSelect(0, flat)
      flat.dispose()
      const out = rows.reshape([b, p, we.shape[1]])
      rows.dispose()
      return this.#model.cfg.post_embedding_ln ? embedLn(this.#model, out) : out
    } finally {
      we.dispose()
    }
  }
  /** `[n_ctx, d_model]` (absolute positional embeddings only) */
  get W_pos(): Tensor {
    return weights.W_pos(this.#model)
  }
  /** `[d_vocab + n_ctx, d_model]`: W_E and W_pos concatenated. */
  get W_E_pos(): Tensor {
    return weights.W_E_pos(this.#model)
  }
  /** `[n_layers, n_heads, d_model, d_head]` */
  get W_Q(): Tensor {
    return weights.W_Q(this.#model)
  }
  /** `[n_layers, n_heads, d_model, d_head]` */
  get W_K(): Tensor {
    return weights.W_K(this.#model)
  }
  /** `[n_layers, n_heads, d_model, d_head]` */
  get W_V(): Tensor {
    return weights.W_V(this.#model)
  }
  /** `[n_layers, n_heads, d_head, d_model]` */
  get W_O(): Tensor {
    return weights.W_O(this.#model)
  }
  /** `[n_layers, d_model, d_mlp]` */
  get W_in(): Tensor {
    return weights.W_in(this.#model)
  }
  /** `[n_layers, d_model, d_mlp]` for gated MLPs, else null. */
  get W_gate(): Tensor | null {
    return weights.W_gate(this.#model)
  }
  /** `[n_layers, d_mlp, d_model]` */
  get W_out(): Tensor {
    return weights.W_out(this.#model)
  }
  /** `[n_layers, n_heads, d_head]` */
  get b_Q(): Tensor {
    return weights.b_Q(this.#model)
  }
  /** `[n_layers, n_heads, d_head]` */
  get b_K(): Tensor {
    return weights.b_K(this.#model)
  }
  /** `[n_layers, n_heads, d_head]` */
  get b_V(): Tensor {
    return weights.b_V(this.#model)
  }
  /** `[n_layers, d_model]` */
  get b_O(): Tensor {
    return weights.b_O(this.#model)
  }
  /** `[n_layers, d_mlp]` */
  get b_in(): Tensor {
    return weights.b_in(this.#model)
  }
  /** `[n_layers, d_model]` */
  get b_out(): Tensor {
    return weights.b_out(this.#model)
  }
  /** TL's `all_head_labels()`: `['L0H0', 'L0H1', ...]`. */
  allHeadLabels(): string[] {
    return weights.allHeadLabels(this.#model)
  }
  /**
   * TL's `accumulated_bias(layer, mlp_input, include_mlp_biases)`: `[d_model]`. Options as an
   * object (`{ mlpInput, includeMlpBiases }`) or TL's positional booleans.
   */
  accumulatedBias(layer: number, options?: weights.AccumulatedBiasOptions | boolean, includeMlpBiases?: boolean): Tensor {
    const o = typeof options === 'boolean' ? { mlpInput: options, includeMlpBiases: includeMlpBiases ?? true } : options
    return weights.accumulatedBias(this.#model, layer, o)
  }
  /** TL's `tokens_to_residual_directions`: `[d_model]` for one token, else `[...tokens.shape, d_model]`. */
  tokensToResidualDirections(tokens: weights.TokensArg): Tensor {
    return weights.tokensToResidualDirections(this.#model, tokens)
  }

  // ---- circuits (src/model/circuits.ts) ----

  /** TL's `QK`: `FactoredMatrix(W_Q, W_Kᵀ)` over every layer and head, `[n_layers, n_heads, d_model, d_model]`. */
  get QK(): FactoredMatrix {
    return circuits.QK(this.#model)
  }
  /** TL's `OV`: `FactoredMatrix(W_V, W_O)` over every layer and head, `[n_layers, n_heads, d_model, d_model]`. */
  get OV(): FactoredMatrix {
    return circuits.OV(this.#model)
  }
  /** TL's `all_composition_scores(mode)`: `[n_layers, n_heads, n_layers, n_heads]`, zero unless the second head is in a later layer. */
  allCompositionScores(mode: circuits.CompositionMode): Tensor {
    return circuits.allCompositionScores(this.#model, mode)
  }
}
