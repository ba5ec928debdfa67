/**
 * TL's `get_act_name`: shorthand → full hook name.
 * `getActName('k', 6, 'a') === 'blocks.6.attn.hook_k'`, `getActName('pre5') === 'blocks.5.mlp.hook_pre'`,
 * `getActName('embed') === 'hook_embed'`, `getActName('scale') === 'ln_final.hook_scale'`.
 */
export function getActName(name: string, layer?: number | string | null, layerType?: string | null): string {
  if ((name.includes('.') || name.startsWith('hook_')) && layer == null && layerType == null) return name
  let n = name
  let l: number | string | null | undefined = layer
  let lt: string | null | undefined = layerType
  const m = /^([a-z]+)(\d+)([a-z]?.*)/.exec(name)
  if (m) {
    n = m[1]
    l = m[2]
    lt = m[3]
  }
  const layerTypeAlias: Record<string, string> = { a: 'attn', m: 'mlp', b: '', block: '', blocks: '', attention: 'attn' }
  const actNameAlias: Record<string, string> = {
    attn: 'pattern',
    attn_logits: 'attn_scores',
    key: 'k',
    query: 'q',
    value: 'v',
    mlp_pre: 'pre',
    mlp_mid: 'mid',
    mlp_post: 'post',
  }
  if (n in actNameAlias) n = actNameAlias[n]
  let full = ''
  if (l != null) full += `blocks.${l}.`
  if (['k', 'v', 'q', 'z', 'rot_k', 'rot_q', 'result', 'pattern', 'attn_scores'].includes(n)) lt = 'attn'
  else if (['pre', 'post', 'mid', 'pre_linear'].includes(n)) lt = 'mlp'
  else if (lt != null && lt in layerTypeAlias) lt = layerTypeAlias[lt]
  if (lt) full += `${lt}.`
  full += `hook_${n}`
  if ((n === 'scale' || n === 'normalized') && l == null) full = `ln_final.${full}`
  return full
}
