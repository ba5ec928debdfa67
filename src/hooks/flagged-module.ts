/**
 * What every model class shares above its hooks: the hook flags TL's blocks read
 * (`use_attn_result`, `use_split_qkv_input`, `use_hook_mlp_in`), as HookedTransformer's
 * `set_use_*` methods (on TL's encoder classes, which have no such methods, TL's users set
 * `model.cfg.use_attn_result = True`), TL's `to` / `cuda` / `cpu`, and `dispose()`. Each model class applies
 * a flag or a move natively and refreshes its `cfg`.
 */
import { boolArg, intArg, stringArg } from '../utils/args'
import type { Device } from '../utils/devices'
import { HookedRootModule } from './root-module'

export abstract class FlaggedModule extends HookedRootModule {
  /** Sets `cfg[name]` in the native model and refreshes `cfg`. */
  protected abstract applyHookFlag(name: string, value: boolean): void

  /** Frees the weights (runs in flight finish first); later use is `TL_DISPOSED`. */
  abstract dispose(): void
  /** Whether `dispose()` was called. */
  abstract get disposed(): boolean
  [Symbol.dispose](): void {
    this.dispose()
  }

  /** Moves the native weights to `device` (checked: a string) and refreshes `cfg`. */
  protected abstract moveTo(device: string): void

  /**
   * TL's `model.to(device)`: moves the weights (in place) and returns the model. Later runs,
   * caches and KV caches live there; token and hook-replacement tensors are moved for you.
   */
  to(device: Device): this {
    stringArg('device', device)
    this.moveTo(device)
    return this
  }
  /** `to('cuda')`, or `to('cuda:N')`. */
  cuda(index = 0): this {
    intArg('index', index, { min: 0 })
    return this.to(`cuda:${index}`)
  }
  /** `to('cpu')`. */
  cpu(): this {
    return this.to('cpu')
  }

  protected setHookFlag(name: string, value: boolean): void {
    boolArg(name, value)
    this.applyHookFlag(name, value)
  }
  /** `cfg.use_attn_result`: `attn.hook_result` fires with each head's output `[batch, pos, n_heads, d_model]`. */
  setUseAttnResult(v: boolean): void {
    this.setHookFlag('use_attn_result', v)
  }
  /**
   * `cfg.use_split_qkv_input`: `hook_q_input` / `hook_k_input` / `hook_v_input` fire with the
   * attention's input repeated per head, `[batch, pos, n_heads, d_model]`, and each head reads its own.
   */
  setUseSplitQkvInput(v: boolean): void {
    this.setHookFlag('use_split_qkv_input', v)
  }
  /** `cfg.use_hook_mlp_in`: `hook_mlp_in` fires on (a copy of) the MLP's input. */
  setUseHookMlpIn(v: boolean): void {
    this.setHookFlag('use_hook_mlp_in', v)
  }
}
