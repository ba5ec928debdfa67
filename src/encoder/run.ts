/**
 * One encoder run (TL's `HookedEncoder.forward` / `encoder_output`, and
 * `BertNextSentencePrediction.forward`): the same hook plans and native runs as
 * `HookedTransformer` (src/hooks/plan.ts), with the encoder's inputs (token type ids, TL's
 * `one_zero_attention_mask`) and heads.
 */
import { ActivationCache } from '../cache/activation-cache'
import { fromNative, nativeAsync, TransformerLensError } from '../errors'
import type { FwdHook } from '../hooks/hook-point'
import { compilePlan, HookContext } from '../hooks/plan'
import type { HookedTransformer } from '../model/hooked-transformer'
import { withAbort } from '../model/abort'
import { opt } from '../model/options'
import type { NamesFilter } from '../model/generate'
import * as binding from '../native/binding'
import { Tensor, wrapT } from '../tensor'
import { invalidArg } from '../utils/args'

/** What runs after the blocks: MLM head and unembedding, pooler and NSP head, or nothing. */
export type EncoderHead = 'mlm' | 'nsp' | 'trunk'

/** TL's `forward` keyword arguments. */
export interface EncoderForwardOptions {
  /** 'logits' (default), 'predictions' (TL's strings for the `[MASK]` tokens) or null (nothing). */
  returnType?: 'logits' | 'predictions' | null
  /** `[batch, pos]` segment ids (0 / 1). From the tokenizer for string input unless given. TL: `token_type_ids`. */
  tokenTypeIds?: Tensor | null
  /** `[batch, pos]`: 1 attends, 0 is ignored (padding). From the tokenizer for string input unless given. TL: `one_zero_attention_mask`. */
  oneZeroAttentionMask?: Tensor | null
  /** Cancels the run between blocks (`TL_ABORTED`). */
  signal?: AbortSignal
}

export interface EncoderRunWithCacheOptions extends EncoderForwardOptions {
  namesFilter?: NamesFilter
  removeBatchDim?: boolean
}

export interface EncoderRunWithHooksOptions extends EncoderForwardOptions {
  fwdHooks?: FwdHook[]
  /** Remove the run's hooks afterwards (default true). TL: `reset_hooks_end`. */
  resetHooksEnd?: boolean
  /** Empty the hook points' `ctx` when the run's hooks are removed. TL: `clear_contexts`. */
  clearContexts?: boolean
}

/** What a run needs from its model. */
export interface EncoderHost {
  native(): binding.NativeEncoder
  hookContext(): HookContext
}

function tensorArg(name: string, t: unknown): Tensor | null {
  if (t === undefined || t === null) return null
  if (!(t instanceof Tensor)) throw invalidArg(name, 'a Tensor', t)
  return t
}

/** The inputs of a run: tokens and, when given, token type ids and the padding mask. */
export interface EncoderInputs {
  tokens: Tensor
  tokenTypeIds: Tensor | null
  mask: Tensor | null
}

/**
 * TL's input rule: strings go through `tokenize` (whose token types and mask apply unless the
 * options give their own); a Tensor is the tokens, with the options' token types and mask.
 */
export function encoderInputs(input: unknown, o: EncoderForwardOptions | undefined, tokenize: (input: unknown) => Tensor[] | null): EncoderInputs {
  const tti = tensorArg('tokenTypeIds', opt<unknown>(o, 'tokenTypeIds', null))
  const mask = tensorArg('oneZeroAttentionMask', opt<unknown>(o, 'oneZeroAttentionMask', null))
  if (input instanceof Tensor) return { tokens: input, tokenTypeIds: tti, mask }
  const encoded = tokenize(input)
  if (encoded === null) throw new TransformerLensError('TL_INVALID_ARGUMENT', 'input must be a string, an array of strings or a Tensor of tokens')
  const [tokens, fromTokenizerTti, fromTokenizerMask] = encoded
  return { tokens, tokenTypeIds: tti ?? fromTokenizerTti, mask: mask ?? fromTokenizerMask }
}

/** Runs the encoder with `head`, the model's registered hooks, `extraHooks`, and caching where `cacheFilter` says. */
export async function runEncoder(
  host: EncoderHost,
  head: EncoderHead,
  x: EncoderInputs,
  o: EncoderForwardOptions | undefined,
  extraHooks: readonly FwdHook[],
  cacheFilter: ((n: string) => boolean) | null,
): Promise<binding.NativeRun> {
  const n = host.native()
  const plan = compilePlan(host.hookContext(), extraHooks, cacheFilter)
  const signal = opt<AbortSignal | undefined>(o, 'signal', undefined)
  if (signal?.aborted) throw new TransformerLensError('TL_ABORTED', 'the run was aborted before it started')
  const tti = x.tokenTypeIds?.native
  const mask = x.mask?.native
  if (!plan.dispatch) {
    return withAbort(signal, (abort) => nativeAsync(() => n.forward(x.tokens.native, tti, mask, head, plan.flags, abort)))
  }
  // JS hooks run on the JS thread; the signal can only flip inside a hook, so check it at each tap.
  const inner = plan.dispatch
  let aborted: TransformerLensError | undefined
  const dispatch = signal
    ? (id: number, t: binding.NativeTensor) => {
        if (signal.aborted) throw (aborted = new TransformerLensError('TL_ABORTED', 'the forward pass was aborted'))
        return inner(id, t)
      }
    : inner
  try {
    return n.forwardWithHooks(x.tokens.native, tti, mask, head, plan.flags, dispatch)
  } catch (e) {
    throw aborted ?? plan.hookError() ?? fromNative(e)
  }
}

/** The run's output (logits, NSP logits or the encoder output). */
export function runOutput(run: binding.NativeRun): Tensor {
  return wrapT(run.takeLogits()!)
}

/**
 * The run's cached activations as TL's ActivationCache (TL builds one over the HookedEncoder;
 * its residual-stream helpers assume a decoder, as TL's do).
 */
export function runCache(run: binding.NativeRun, host: EncoderHost, model: object, removeBatchDim: boolean): ActivationCache {
  const names = host.hookContext().names
  const dict = new Map<string, Tensor>()
  run.cacheIds().forEach((id, i) => dict.set(names[id], wrapT(run.takeCached(i)!)))
  const cache = new ActivationCache(dict, model as HookedTransformer)
  if (removeBatchDim) cache.removeBatchDim()
  return cache
}
