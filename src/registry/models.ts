import { TransformerLensError } from '../errors'
import { MODEL_ALIASES, OFFICIAL_MODEL_NAMES } from './official-names'

export { MODEL_ALIASES, OFFICIAL_MODEL_NAMES }

let aliasMap: Map<string, string> | null = null

/** TL's `make_model_alias_map`: every alias and official name, lower-cased → official name. */
function aliases(): Map<string, string> {
  if (aliasMap) return aliasMap
  const m = new Map<string, string>()
  for (const official of OFFICIAL_MODEL_NAMES) {
    for (const a of MODEL_ALIASES[official] ?? []) m.set(a.toLowerCase(), official)
    m.set(official.toLowerCase(), official)
  }
  aliasMap = m
  return m
}

/** TL's `get_official_model_name` (case-insensitive). Throws TL_UNKNOWN_MODEL. */
export function getOfficialModelName(name: string): string {
  const official = aliases().get(name.toLowerCase())
  if (official === undefined) {
    throw new TransformerLensError(
      'TL_UNKNOWN_MODEL',
      `'${name}' is not a known model name or alias (${OFFICIAL_MODEL_NAMES.length} official names; see OFFICIAL_MODEL_NAMES)`,
    )
  }
  return official
}
