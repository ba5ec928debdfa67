/**
 * TL's `get_pretrained_model_config`: a model's HookedTransformerConfig without its weights:
 * TL's hard-coded config for the names it has one for (the Llama table), else the family's
 * mapping of config.json, found in the HF cache or downloaded alone.
 */
import { fromNative, native, TransformerLensError } from '../errors'
import * as binding from '../native/binding'
import { getOfficialModelName } from '../registry/models'
import { boolArg, optIntArg, stringArg, U32_MAX } from '../utils/args'
import { defaultDevice } from '../utils/devices'
import { checkpointsAreFiles, chooseCheckpoint } from './checkpoints'
import type { HookedTransformerConfig } from './hooked-transformer'
import { ensureConfig, EnsureModelOptions, nDevicesArg } from './loading'
import { DtypeOptions, modelDtypeArg, opt } from './options'

export interface PretrainedConfigOptions extends EnsureModelOptions, DtypeOptions {
  checkpointIndex?: number
  checkpointValue?: number
  /** Rename LN / RMS to LNPre / RMSPre as the folded model has them (default false, as TL). */
  foldLn?: boolean
  device?: string
  nDevices?: number
  defaultPrependBos?: boolean
  firstNLayers?: number
}

/** TL's `get_pretrained_model_config(model_name, ...)`: the config (TL's snake_case fields) of an official name, alias or local folder. */
export async function getPretrainedModelConfig(modelName: string, options: PretrainedConfigOptions = {}): Promise<HookedTransformerConfig> {
  stringArg('modelName', modelName)
  const prependBos = opt<unknown>(options, 'defaultPrependBos', undefined)
  const args: binding.ConfigArgs = {
    officialName: modelName,
    foldLn: boolArg('foldLn', opt(options, 'foldLn', false)),
    dtype: modelDtypeArg(options),
    device: stringArg('device', opt(options, 'device', undefined) ?? defaultDevice()),
    defaultPrependBos: prependBos === undefined || prependBos === null ? undefined : boolArg('defaultPrependBos', prependBos),
    firstNLayers: optIntArg('firstNLayers', opt<unknown>(options, 'firstNLayers', undefined), { min: 1, max: U32_MAX }),
    nDevices: nDevicesArg(options),
  }
  let official: string
  try {
    official = getOfficialModelName(modelName)
  } catch (e) {
    // A local folder with a config.json is its own name, as in TL.
    const { dir, officialName } = await ensureConfig(modelName, options).catch(() => Promise.reject(e))
    return JSON.parse(native(() => binding.pretrainedConfigJson({ ...args, officialName, dir })))
  }
  const pick = (dir?: string) => chooseCheckpoint(official, opt(options, 'checkpointIndex', undefined), opt(options, 'checkpointValue', undefined), dir) ?? undefined
  if (checkpointsAreFiles(official)) {
    // NeelNanda's checkpoints are files of the snapshot: listed from it.
    const { dir } = await ensureConfig(official, options)
    return JSON.parse(native(() => binding.pretrainedConfigJson({ ...args, officialName: official, dir, checkpoint: pick(dir) })))
  }
  const checkpoint = pick()
  // TL reads no file for the names it hard-codes.
  try {
    return JSON.parse(native(() => binding.pretrainedConfigJson({ ...args, officialName: official, checkpoint })))
  } catch (e) {
    const err = fromNative(e)
    if (!(err instanceof TransformerLensError) || err.code !== 'TL_MISSING_FILE') throw err
  }
  const { dir } = await ensureConfig(official, options)
  return JSON.parse(native(() => binding.pretrainedConfigJson({ ...args, officialName: official, dir, checkpoint })))
}
