/**
 * Devices, by torch's names: `'cpu'`, `'cuda'` (GPU 0) or `'cuda:N'`. CUDA needs an addon built
 * with the `cuda` cargo feature (`npm run build:native -- --features cuda`).
 */
import { native } from '../errors'
import * as binding from '../native/binding'

export type Device = 'cpu' | 'cuda' | `cuda:${number}`

/** Whether this build has CUDA support and a GPU can be opened (torch's `cuda.is_available()`). */
export function cudaIsAvailable(): boolean {
  return native(() => binding.cudaAvailable())
}

/** Whether the native addon was compiled with CUDA support (whether or not a GPU is present). */
export function cudaBuild(): boolean {
  return native(() => binding.cudaBuild())
}

/** TL's `utils.get_device()`: `'cuda'` when a GPU can be used, else `'cpu'`. */
export function getDevice(): Device {
  return cudaIsAvailable() ? 'cuda' : 'cpu'
}

/** `'cpu'`, `'cuda'`, `'cuda:N'` (not a dtype name). */
export function isDeviceName(s: string): s is Device {
  return /^(cpu|cuda(:\d+)?)$/i.test(s)
}
