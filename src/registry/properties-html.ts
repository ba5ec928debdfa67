/**
 * The model properties table as one self-contained HTML page (src/viz/html.ts's shell: inline
 * CSS and JS, no network, a CSP that admits only the page's own script). Every row is rendered
 * into the HTML, escaped, so the page reads without script; the script adds sorting (click a
 * column header) and filtering (a text box over every cell, and "runs here only").
 */
import { escapeHtml, pageHtml } from '../viz/html'
import type { ModelPropertiesRow } from './properties'

/** The columns shown, in order: [row field, header]. */
export const PROPERTIES_COLUMNS: ReadonlyArray<readonly [keyof ModelPropertiesRow, string]> = [
  ['name', 'name'],
  ['aliases', 'aliases'],
  ['n_params', 'n_params'],
  ['n_layers', 'n_layers'],
  ['d_model', 'd_model'],
  ['n_heads', 'n_heads'],
  ['d_head', 'd_head'],
  ['d_mlp', 'd_mlp'],
  ['n_key_value_heads', 'n_key_value_heads'],
  ['act_fn', 'act_fn'],
  ['n_ctx', 'n_ctx'],
  ['d_vocab', 'd_vocab'],
  ['positional_embedding_type', 'positional embedding'],
  ['normalization_type', 'normalization'],
  ['architecture', 'original architecture'],
  ['source', 'source'],
  ['supported', 'runs here'],
  ['reason', 'reason / note'],
]

const CSS = `
.controls{display:flex;gap:14px;align-items:center;margin:0 0 10px}
.controls input[type=search]{width:320px;padding:3px 6px}
table.props{border-collapse:collapse;font-size:12px}
table.props th,table.props td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
table.props th{background:#f4f4f4;cursor:pointer;position:sticky;top:0;user-select:none;white-space:nowrap}
table.props th[aria-sort=ascending]::after{content:" \\25B2"}
table.props th[aria-sort=descending]::after{content:" \\25BC"}
table.props td.num{text-align:right;font-variant-numeric:tabular-nums}
table.props tr.no td{color:#8a1c1c}
table.props td.unknown{color:#999}
`

const SCRIPT = `
var table=document.querySelector('table.props'),body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
var q=document.getElementById('q'),only=document.getElementById('only'),count=document.getElementById('count');
function apply(){var s=q.value.toLowerCase(),n=0;rows.forEach(function(r){
var ok=(!s||r.textContent.toLowerCase().indexOf(s)>=0)&&(!only.checked||r.getAttribute('data-supported')==='true');
r.hidden=!ok;if(ok)n++});count.textContent=n+' of '+rows.length+' models'}
q.addEventListener('input',apply);only.addEventListener('change',apply);
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){th.addEventListener('click',function(){
var asc=th.getAttribute('aria-sort')!=='ascending';
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(h){h.removeAttribute('aria-sort')});
th.setAttribute('aria-sort',asc?'ascending':'descending');
function key(r){var c=r.cells[i],v=c.getAttribute('data-v');return v===null?c.textContent.toLowerCase():(v===''?null:Number(v))}
rows.sort(function(a,b){var x=key(a),y=key(b);if(x===y)return 0;if(x===null)return 1;if(y===null)return -1;
return (x<y?-1:1)*(asc?1:-1)});rows.forEach(function(r){body.appendChild(r)})})});
apply();
`

function cell(row: ModelPropertiesRow, key: keyof ModelPropertiesRow): string {
  const v = row[key]
  if (key === 'n_params') {
    return row.n_params === null
      ? `<td class="num unknown" data-v="">?</td>`
      : `<td class="num" data-v="${row.n_params}" title="${row.n_params}">${escapeHtml(row.n_params_str ?? String(row.n_params))}</td>`
  }
  if (key === 'supported') return `<td>${v ? 'yes' : 'no'}</td>`
  if (key === 'reason') {
    const text = [row.reason, row.note].filter((s) => s).join(' · ')
    return `<td>${escapeHtml(text)}</td>`
  }
  if (key === 'aliases') return `<td class="mono">${escapeHtml(row.aliases.join(', '))}</td>`
  if (typeof v === 'number') return `<td class="num" data-v="${v}">${v}</td>`
  if (v === null || v === undefined) {
    const numeric = ['n_layers', 'd_model', 'n_heads', 'd_head', 'd_mlp', 'n_key_value_heads', 'n_ctx', 'd_vocab'].includes(key)
    return `<td class="${numeric ? 'num ' : ''}unknown"${numeric ? ' data-v=""' : ''}>${numeric ? '?' : ''}</td>`
  }
  return `<td${key === 'name' ? ' class="mono"' : ''}>${escapeHtml(String(v))}</td>`
}

/** The table as a complete HTML document (save it with `writeHtml(file, html)`). */
export function modelPropertiesHtml(rows: readonly ModelPropertiesRow[], title = 'TransformerLens models'): string {
  const head = PROPERTIES_COLUMNS.map(([, h]) => `<th scope="col">${escapeHtml(h)}</th>`).join('')
  const bodyRows = rows
    .map((r) => `<tr data-supported="${r.supported}"${r.supported ? '' : ' class="no"'}>${PROPERTIES_COLUMNS.map(([k]) => cell(r, k)).join('')}</tr>`)
    .join('\n')
  const supported = rows.filter((r) => r.supported).length
  const body = `<p>${rows.length} official names; ${supported} run in this library. Values are TL's config (TL 2.16.1); <span class="unknown">?</span> marks a value not known offline (config.json not in the HF cache). Click a header to sort.</p>
<div class="controls"><input id="q" type="search" placeholder="filter (name, alias, architecture, ...)" aria-label="filter"><label><input id="only" type="checkbox"> runs here only</label><span id="count"></span></div>
<table class="props"><thead><tr>${head}</tr></thead>
<tbody>
${bodyRows}
</tbody></table>`
  return pageHtml({ title, body, css: CSS, script: SCRIPT })
}
