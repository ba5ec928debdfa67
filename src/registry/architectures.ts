/**
 * Which HF architecture each of TL's official names is, and whether this library runs it.
 *
 * TL reads a model's architecture from its config.json on the hub (`architectures[0]`), except
 * for the names it hard-codes (Llama, Gemma) and its own checkpoints (NeelNanda, ArthurConmy,
 * Baidicoot). The rules below record those facts for TL 2.16.1's official names, so the model
 * properties table can say offline whether a model runs here before any config.json is seen;
 * where config.json is at hand, its own `architectures[0]` decides.
 */

/** TL's own checkpoints: config.json in NeelNanda's field names, `.pth` state dicts. */
export const TL_CHECKPOINT = 'TL checkpoint'

/** The HF architectures this library has a family for (crates/engine/src/families/mod.rs: FAMILIES). */
export const SUPPORTED_ARCHITECTURES: readonly string[] = [
  'GPT2LMHeadModel',
  'GPTNeoXForCausalLM',
  'LlamaForCausalLM',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
  'GPTNeoForCausalLM',
  'GPTJForCausalLM',
  'OPTForCausalLM',
  'PhiForCausalLM',
  'Phi3ForCausalLM',
  'Qwen3ForCausalLM',
  'BloomForCausalLM',
  'GemmaForCausalLM',
  'Gemma2ForCausalLM',
  'MixtralForCausalLM',
  'GPT2LMHeadCustomModel',
  'QWenLMHeadModel',
]

/** The 19 HF architectures TL 2.16.1 loads (`convert_hf_model_config`), besides its own checkpoints. */
export const TL_ARCHITECTURES: readonly string[] = [
  ...SUPPORTED_ARCHITECTURES,
  'BertForMaskedLM',
  'T5ForConditionalGeneration',
]

/** Encoder architectures: TL loads them as `HookedEncoder` (crates/engine/src/bert), not `HookedTransformer`. */
export const ENCODER_ARCHITECTURES: readonly string[] = ['BertForMaskedLM']

/** The architectures that run here through a class other than HookedTransformer, and that class (TL's). */
export const ARCHITECTURE_CLASSES: Readonly<Record<string, string>> = {
  BertForMaskedLM: 'HookedEncoder',
  T5ForConditionalGeneration: 'HookedEncoderDecoder',
}

/** The class that loads `architecture` (TL's): HookedTransformer unless ARCHITECTURE_CLASSES says otherwise. */
export function architectureClass(architecture: string | null): string {
  return (architecture !== null && ARCHITECTURE_CLASSES[architecture]) || 'HookedTransformer'
}

/** Why an architecture TL loads does not run here. */
export const UNSUPPORTED_REASONS: Readonly<Record<string, string>> = {}

/** Official-name patterns → architecture, first match wins. Every official name matches one (tested). */
const RULES: ReadonlyArray<readonly [RegExp, string]> = [
  [/^(NeelNanda|ArthurConmy|Baidicoot)\//, TL_CHECKPOINT],
  [/llama/i, 'LlamaForCausalLM'],
  // TL's own test, on the lower-cased name: so google/gemma-2b is Gemma2ForCausalLM too, as in TL.
  [/gemma-2/i, 'Gemma2ForCausalLM'],
  [/gemma/i, 'GemmaForCausalLM'],
  [/^(gpt2(-medium|-large|-xl)?|distilgpt2)$/, 'GPT2LMHeadModel'],
  [/^stanford-crfm\//, 'GPT2LMHeadModel'],
  [/^ai-forever\/mGPT$/, 'GPT2LMHeadModel'],
  [/^facebook\/opt-/, 'OPTForCausalLM'],
  [/^EleutherAI\/gpt-neo-/, 'GPTNeoForCausalLM'],
  [/^roneneldan\/TinyStories/, 'GPTNeoForCausalLM'],
  [/^EleutherAI\/gpt-j-/, 'GPTJForCausalLM'],
  [/^EleutherAI\/(gpt-neox-|pythia-)/, 'GPTNeoXForCausalLM'],
  [/^stabilityai\/stablelm-/, 'GPTNeoXForCausalLM'],
  [/^google-bert\/bert-/, 'BertForMaskedLM'],
  [/^google-t5\/t5-/, 'T5ForConditionalGeneration'],
  [/^mistralai\/Mixtral-/, 'MixtralForCausalLM'],
  [/^mistralai\/Mistral-/, 'MistralForCausalLM'],
  [/^bigscience\/bloom-/, 'BloomForCausalLM'],
  [/^bigcode\/santacoder$/, 'GPT2LMHeadCustomModel'],
  [/^Qwen\/Qwen-/, 'QWenLMHeadModel'],
  [/^Qwen\/(Qwen1\.5-|Qwen2-|Qwen2\.5-|QwQ-)/, 'Qwen2ForCausalLM'],
  [/^Qwen\/Qwen3-/, 'Qwen3ForCausalLM'],
  [/^microsoft\/phi-(1|1_5|2)$/, 'PhiForCausalLM'],
  [/^microsoft\/(Phi-3-|phi-4$)/, 'Phi3ForCausalLM'],
  [/^01-ai\/Yi-/, 'LlamaForCausalLM'],
]

/** The architecture TL 2.16.1 sees for an official name, or null for a name no rule knows. */
export function architectureOf(officialName: string): string | null {
  for (const [re, arch] of RULES) if (re.test(officialName)) return arch
  return null
}

/**
 * Whether this library runs `architecture` (with `architectureClass(architecture)`: BERT as
 * `HookedEncoder`, T5 as `HookedEncoderDecoder`); the reason when it does not. `TL_CHECKPOINT`
 * (TL's own checkpoints) runs (src/model/loading → crates/engine/src/load/tl_native.rs).
 */
export function architectureSupport(architecture: string | null): { supported: boolean; reason: string | null } {
  if (architecture === null) return { supported: false, reason: 'no known architecture for this name' }
  if (architecture === TL_CHECKPOINT || SUPPORTED_ARCHITECTURES.includes(architecture) || ARCHITECTURE_CLASSES[architecture]) return { supported: true, reason: null }
  const known = UNSUPPORTED_REASONS[architecture]
  if (known) return { supported: false, reason: known }
  if (TL_ARCHITECTURES.includes(architecture)) return { supported: false, reason: `${architecture} has no family in this library yet` }
  return { supported: false, reason: `${architecture} is not an architecture TL 2.16.1 loads` }
}

/** TL's weights that the HF hub does not host (`NON_HF_HOSTED_MODEL_NAMES`): TL needs them passed in. */
export const NON_HF_HOSTED_MODEL_NAMES: readonly string[] = ['llama-7b-hf', 'llama-13b-hf', 'llama-30b-hf', 'llama-65b-hf']
