/**
 * Devices, by torch's names: `'cpu'`, `'cuda'` (GPU 0) or `'cuda:N'`. CUDA needs an addon built
 * with the `cuda` cargo feature (`npm run build:native -- --features cuda`).
 */
import { native, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { stringArg } from './args'

export type Device = 'cpu' | 'cuda' | `cuda:${number}`

/** Whether this build has CUDA support and a GPU can be opened (torch's `cuda.is_available()`). */
export function cudaIsAvailable(): boolean {
  return native(() => binding.cudaAvailable())
}

/** Whether the native addon was compiled with CUDA support (whether or not a GPU is present). */
export function cudaBuild(): boolean {
  return native(() => binding.cudaBuild())
}

/**
 * Where `fromPretrained` puts a model when no `device` is given: `TL_DEVICE` from the
 * environment (`cpu`, `cuda`, `cuda:N`), else `'cpu'`. TL defaults to its `get_device()`; here the
 * GPU path is experimental (see the README) and is used only when asked for.
 */
export function defaultDevice(): Device {
  const env = process.env.TL_DEVICE?.trim()
  if (!env) return 'cpu'
  if (!isDeviceName(env)) {
    throw new TransformerLensError('TL_INVALID_ARGUMENT', `TL_DEVICE='${env}' is not a device: expected 'cpu', 'cuda' or 'cuda:N'`)
  }
  return env.toLowerCase() as Device
}

/** TL's `utils.get_device()`: `'cuda'` when a GPU can be used, else `'cpu'`. */
export function getDevice(): Device {
  return cudaIsAvailable() ? 'cuda' : 'cpu'
}

/** `'cpu'`, `'cuda'`, `'cuda:N'` (not a dtype name). */
export function isDeviceName(s: string): s is Device {
  return /^(cpu|cuda(:\d+)?)$/i.test(s)
}

/**
 * Waits until the GPU has finished the work queued so far (torch's `cuda.synchronize()`).
 * Runs return once their work is queued, so time GPU work with this. A no-op for `'cpu'`.
 */
export function synchronize(device: Device = 'cuda'): void {
  stringArg('device', device)
  native(() => binding.synchronize(device))
}
