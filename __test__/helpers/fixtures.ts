import * as fs from 'node:fs'
import * as path from 'node:path'

import { readSafetensors, Golden } from './safetensors'

export const FIXTURES = path.join(__dirname, '..', 'fixtures')
export const HUB = path.join(FIXTURES, 'hub')

/** Points the library at the fabricated HF cache; never touches the network. */
export function useFixtureHub(): void {
  process.env.HF_HUB_CACHE = HUB
  process.env.HF_HUB_OFFLINE = '1'
}

export const MODELS = [
  'gpt2', 'distilgpt2', 'stanford-crfm/alias-gpt2-small-x21', 'EleutherAI/pythia-70m', '01-ai/Yi-6B', 'Qwen/Qwen2-0.5B', 'mistralai/Mistral-7B-v0.1',
  'EleutherAI/gpt-neo-125M', 'EleutherAI/gpt-j-6B', 'facebook/opt-125m',
  'microsoft/phi-2', 'microsoft/phi-4', 'Qwen/Qwen3-0.6B',
  'google/gemma-2b', 'google/gemma-2-2b',
  'bigscience/bloom-560m',
  'bigcode/santacoder',
  'Qwen/Qwen-1_8B',
  'mistralai/Mixtral-8x7B-v0.1',
  'EleutherAI/pythia-14m', 'microsoft/phi-1_5', 'mistralai/Mixtral-8x7B-Instruct-v0.1',
] as const

export function slug(model: string): string {
  return model.replace('/', '__')
}

export interface GoldenSet {
  json: any
  tensors: Map<string, Golden>
}

const loaded = new Map<string, GoldenSet>()

/** `golden/{slug}/{name}.json` + `.safetensors`. */
export function golden(model: string, name: string): GoldenSet {
  const key = `${model}/${name}`
  const hit = loaded.get(key)
  if (hit) return hit
  const dir = path.join(FIXTURES, 'golden', slug(model))
  const set = {
    json: JSON.parse(fs.readFileSync(path.join(dir, `${name}.json`), 'utf8')),
    tensors: readSafetensors(path.join(dir, `${name}.safetensors`)),
  }
  loaded.set(key, set)
  return set
}
