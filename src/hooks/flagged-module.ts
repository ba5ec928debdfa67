/**
 * The hook flags TL's blocks read (`use_attn_result`, `use_split_qkv_input`, `use_hook_mlp_in`),
 * as HookedTransformer's `set_use_*` methods; on TL's encoder classes, which have no such
 * methods, TL's users set `model.cfg.use_attn_result = True`. Each model class applies a flag
 * natively and refreshes its `cfg`.
 */
import { boolArg } from '../utils/args'
import { HookedRootModule } from './root-module'

export abstract class FlaggedModule extends HookedRootModule {
  /** Sets `cfg[name]` in the native model and refreshes `cfg`. */
  protected abstract applyHookFlag(name: string, value: boolean): void

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
