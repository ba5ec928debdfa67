/**
 * Attention patterns as a self-contained HTML page: destination (query) tokens down the side,
 * source (key) tokens along the top, each cell coloured by the weight from 0 (white) to 1 (dark
 * blue). A row of thumbnails, one per head, picks the head shown (arrow keys step through them);
 * hovering a cell shows both tokens and the weight. The weights travel as JSON and the grid is
 * built by the page's script, with every token put on the page as `textContent`.
 */
import { ActivationCache } from '../cache/activation-cache'
import { TransformerLensError } from '../errors'
import { Tensor } from '../tensor'
import { intArg, invalidArg, stringArg } from '../utils/args'
import { NAN_RGB, SCALE_STOPS } from './color'
import { escapeHtml, pageHtml, showToken } from './html'
import { legendHtml } from './heatmap'

export interface AttentionPatternSpec {
  /** The tokens, as strings; they label the source axis, and the destination axis by its last `dest` entries. */
  tokens: string[]
  /** `[heads, dest, src]` (a `[dest, src]` pattern is one head). */
  patterns: Tensor | number[][][] | number[][]
  /** One label per head; `H0`, `H1`, … by default. */
  headLabels?: string[]
  title?: string
}

export interface CacheAttentionOptions {
  /** Token labels: strings, or a prompt / token Tensor for `cache.model.toStrTokens`; positions by default. */
  tokens?: string[] | string | Tensor
  /** Which heads of the layer, in this order; all by default. */
  heads?: number[]
  /** Which batch element (0 by default); ignored for a cache without a batch dim. */
  batch?: number
  title?: string
}

const CSS = `
.att{display:flex;flex-direction:column;align-items:flex-start;gap:10px}
.heads{display:flex;flex-wrap:wrap;gap:6px}
.heads button{display:flex;flex-direction:column;align-items:center;gap:3px;padding:4px;border:1px solid #ccc;border-radius:4px;background:#fff;cursor:pointer;font:11px system-ui,sans-serif;color:#333}
.heads button:hover{border-color:#777}
.heads button[aria-selected="true"]{border-color:#08306b;box-shadow:0 0 0 2px #6baed6;color:#08306b;font-weight:600}
.heads canvas{width:56px;height:56px;image-rendering:pixelated;border:1px solid #e3e3e3;background:#fff}
.caption{color:#444}
.caption b{color:#08306b}
.grid-wrap{overflow:auto;max-width:100%;max-height:80vh;border:1px solid #e3e3e3;border-radius:3px;display:inline-block}
#grid{border-collapse:separate;border-spacing:0;font-size:11px}
#grid td{width:var(--cell);min-width:var(--cell);height:var(--cell);padding:0;border:1px solid #fff;box-sizing:border-box}
#grid td:hover{outline:2px solid #111;outline-offset:-1px}
#grid th{font-weight:400;color:#333;background:#fff;position:sticky;padding:0 3px;white-space:pre;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
#grid thead th{top:0;z-index:1;vertical-align:bottom}
#grid thead th span{writing-mode:vertical-rl;transform:rotate(180deg);display:inline-block;max-height:10em;overflow:hidden;text-overflow:ellipsis}
#grid tbody th{left:0;text-align:right;max-width:12em;overflow:hidden;text-overflow:ellipsis;line-height:1}
#grid th.corner{left:0;z-index:2}
#grid th.hl{background:#ffe9a8}
.tiny #grid th{font-size:0;padding:0}
.tiny #grid td{border:0}
`

const SCRIPT = `
var D=JSON.parse(document.getElementById('tl-data').textContent);
var STOPS=D.stops,NAN='rgb('+D.nan.join(', ')+')',nD=D.nDest,nS=D.nSrc,off=D.offset;
function rgb(v){var x=Math.min(1,Math.max(0,v))*(STOPS.length-1),i=Math.min(STOPS.length-2,Math.floor(x)),f=x-i,a=STOPS[i],b=STOPS[i+1];
return [0,1,2].map(function(k){return Math.round(a[k]+(b[k]-a[k])*f)})}
function css(v){if(v===null)return NAN;var c=rgb(v);return 'rgb('+c[0]+', '+c[1]+', '+c[2]+')'}
var grid=document.getElementById('grid'),cells=[],rowHeads=[],colHeads=[];
var hr=grid.createTHead().insertRow(),corner=document.createElement('th');corner.className='corner';hr.appendChild(corner);
for(var j=0;j<nS;j++){var th=document.createElement('th'),sp=document.createElement('span');sp.textContent=D.shown[j];th.appendChild(sp);th.dataset.src=j;hr.appendChild(th);colHeads.push(th)}
var tb=grid.createTBody();
for(var i=0;i<nD;i++){var tr=tb.insertRow(),rh=document.createElement('th');rh.textContent=D.shown[off+i];rh.dataset.dest=off+i;tr.appendChild(rh);rowHeads.push(rh);
for(var j2=0;j2<nS;j2++){var td=tr.insertCell();td.dataset.dest=off+i;td.dataset.src=j2;cells.push(td)}}
var buttons=Array.prototype.slice.call(document.querySelectorAll('.heads button'));
buttons.forEach(function(b,h){var cv=b.querySelector('canvas'),ctx=cv.getContext('2d');if(!ctx)return;
var img=ctx.createImageData(nS,nD),w=D.w[h];
for(var k=0;k<w.length;k++){var c=w[k]===null?D.nan:rgb(w[k]);img.data[4*k]=c[0];img.data[4*k+1]=c[1];img.data[4*k+2]=c[2];img.data[4*k+3]=255}
ctx.putImageData(img,0,0);b.addEventListener('click',function(){show(h)})});
var cur=0,name=document.getElementById('head-name');
function show(h){cur=h;var w=D.w[h];for(var k=0;k<cells.length;k++){var v=w[k];cells[k].style.backgroundColor=css(v);cells[k].classList.toggle('nan',v===null)}
buttons.forEach(function(b,k){b.setAttribute('aria-selected',k===h?'true':'false');b.tabIndex=k===h?0:-1});
name.textContent=D.labels[h];grid.dataset.head=h}
document.querySelector('.heads').addEventListener('keydown',function(e){if(e.key==='ArrowRight'||e.key==='ArrowLeft'){var h=(cur+(e.key==='ArrowRight'?1:D.labels.length-1))%D.labels.length;show(h);buttons[h].focus();e.preventDefault()}});
var lit=[];function unlight(){lit.forEach(function(x){x.classList.remove('hl')});lit=[]}
grid.addEventListener('mouseover',function(e){var td=e.target instanceof Element&&e.target.closest('td');unlight();
if(!td){tlTip.hide();return}var d=+td.dataset.dest,s=+td.dataset.src,v=D.w[cur][(d-off)*nS+s];
lit=[rowHeads[d-off],colHeads[s]];lit.forEach(function(x){x.classList.add('hl')});
tlTip.show(e,D.labels[cur]+'\\ndest '+d+'  '+JSON.stringify(D.tokens[d])+'\\nsrc  '+s+'  '+JSON.stringify(D.tokens[s])+'\\nweight '+(v===null?'NaN':v.toFixed(4)))});
grid.addEventListener('mouseleave',function(){unlight();tlTip.hide()});
show(0);
`

/** `patterns` as per-head flat rows (row-major `[dest, src]`) with its dims. */
function headWeights(patterns: unknown): { w: Float64Array[]; nD: number; nS: number } {
  if (patterns instanceof Tensor) {
    const shape = patterns.shape
    if (shape.length !== 2 && shape.length !== 3) {
      throw new TransformerLensError('TL_SHAPE_MISMATCH', `attention patterns must be [heads, dest, src] or [dest, src], got [${shape}]`)
    }
    const [nH, nD, nS] = shape.length === 3 ? shape : [1, ...shape]
    const flat = patterns.isFloatingPoint() ? patterns.toArray() : patterns.to('float64').toArray()
    const size = nD * nS
    return { w: Array.from({ length: nH }, (_, h) => Float64Array.from(flat.subarray(h * size, (h + 1) * size) as ArrayLike<number>)), nD, nS }
  }
  if (!Array.isArray(patterns)) throw invalidArg('patterns', 'a Tensor or nested arrays [heads, dest, src]', patterns)
  const heads = (patterns.length > 0 && !Array.isArray(patterns[0]?.[0]) ? [patterns] : patterns) as unknown[]
  const nD = Array.isArray(heads[0]) ? heads[0].length : 0
  const nS = nD > 0 && Array.isArray((heads[0] as unknown[])[0]) ? ((heads[0] as unknown[][])[0] as unknown[]).length : 0
  const w = heads.map((head, h) => {
    if (!Array.isArray(head) || head.length !== nD) throw new TransformerLensError('TL_SHAPE_MISMATCH', `patterns[${h}] is not ${nD} rows like patterns[0]`)
    const out = new Float64Array(nD * nS)
    head.forEach((row: unknown, d: number) => {
      if (!Array.isArray(row) || row.length !== nS) throw new TransformerLensError('TL_SHAPE_MISMATCH', `patterns[${h}][${d}] is not ${nS} weights like patterns[0][0]`)
      row.forEach((v: unknown, s: number) => {
        if (typeof v !== 'number') throw invalidArg(`patterns[${h}][${d}][${s}]`, 'a number', v)
        out[d * nS + s] = v
      })
    })
    return out
  })
  return { w, nD, nS }
}

/**
 * Attention patterns (`[heads, dest, src]`) as a self-contained HTML page with a head selector;
 * write it with `writeHtml`. `tokens` label the source axis (one per source position) and the
 * destination axis by its last `dest` tokens (all of them without a KV cache).
 */
export function attentionPatternHtml(spec: AttentionPatternSpec): string {
  if (spec === null || typeof spec !== 'object') throw invalidArg('spec', 'an AttentionPatternSpec object', spec)
  if (!Array.isArray(spec.tokens)) throw invalidArg('tokens', 'an array of strings', spec.tokens)
  const tokens = spec.tokens.map((t, i) => stringArg(`tokens[${i}]`, t))
  const { w, nD, nS } = headWeights(spec.patterns)
  const nH = w.length
  if (nH === 0 || nD === 0 || nS === 0) throw new TransformerLensError('TL_SHAPE_MISMATCH', 'attention patterns are empty')
  if (nS !== tokens.length || nD > nS) {
    throw new TransformerLensError('TL_SHAPE_MISMATCH', `patterns are [${nH}, ${nD}, ${nS}] (heads, dest, src) but there are ${tokens.length} tokens: src must be the token count, dest at most that`)
  }
  const labels = spec.headLabels ?? Array.from({ length: nH }, (_, h) => `H${h}`)
  if (!Array.isArray(labels) || labels.length !== nH) {
    throw new TransformerLensError('TL_SHAPE_MISMATCH', `headLabels must have one label per head (${nH}), got ${Array.isArray(labels) ? labels.length : typeof labels}`)
  }
  labels.forEach((l, i) => stringArg(`headLabels[${i}]`, l))
  const title = spec.title === undefined ? 'Attention patterns' : stringArg('title', spec.title)

  const round = (v: number) => (Number.isFinite(v) ? Math.round(v * 1e5) / 1e5 : null)
  const data = {
    tokens,
    shown: tokens.map(showToken),
    labels,
    nDest: nD,
    nSrc: nS,
    offset: nS - nD,
    w: w.map((head) => Array.from(head, round)),
    stops: SCALE_STOPS.sequential,
    nan: NAN_RGB,
  }
  const n = Math.max(nD, nS)
  const cell = Math.max(4, Math.min(22, Math.floor(640 / n)))
  const buttons = labels
    .map(
      (l, h) =>
        `<button type="button" role="tab" data-h="${h}" aria-selected="${h === 0}"><canvas width="${nS}" height="${nD}"></canvas>` +
        `<span class="tok">${escapeHtml(l)}</span></button>`,
    )
    .join('')
  const body =
    `<div class="att"><div class="heads" role="tablist" aria-label="heads">${buttons}</div>` +
    `<div class="caption">Showing <b id="head-name">${escapeHtml(labels[0])}</b> · rows: destination (query) token · columns: source (key) token</div>` +
    `<div class="grid-wrap${cell < 12 ? ' tiny' : ''}" style="--cell:${cell}px"><table id="grid" data-tip-dyn></table></div>` +
    legendHtml('sequential', 0, 1, 'attention weight') +
    `</div>`
  return pageHtml({ title, body, css: CSS, data, script: SCRIPT })
}

/**
 * The attention patterns of one layer from a cache (`blocks.{layer}.attn.hook_pattern`, batch
 * element `batch`, 0 by default), as `attentionPatternHtml`'s page with heads labelled `L{l}H{h}`.
 */
export function attentionPatternHtmlFromCache(cache: ActivationCache, layer: number, options: CacheAttentionOptions = {}): string {
  if (!(cache instanceof ActivationCache)) throw invalidArg('cache', 'an ActivationCache', cache)
  const nLayers = cache.model.cfg.n_layers
  const l = intArg('layer', layer, { min: -nLayers, max: nLayers - 1 })
  const L = l < 0 ? l + nLayers : l
  const full = cache.get('pattern', L, 'attn')
  const owned: Tensor[] = []
  try {
    let pat = full
    if (cache.hasBatchDim) {
      const b = intArg('batch', options.batch ?? 0, { min: 0, max: full.shape[0] - 1 })
      pat = full.get(b)
      owned.push(pat)
    }
    const nH = pat.shape[0]
    const heads = options.heads === undefined ? Array.from({ length: nH }, (_, h) => h) : options.heads
    if (!Array.isArray(heads) || heads.length === 0) throw invalidArg('heads', 'a non-empty array of head indices', heads)
    heads.forEach((h, i) => intArg(`heads[${i}]`, h, { min: 0, max: nH - 1 }))
    const { w, nD, nS } = headWeights(pat)
    const patterns = heads.map((h) => Array.from({ length: nD }, (_, d) => Array.from(w[h].subarray(d * nS, (d + 1) * nS))))
    let tokens: string[]
    const src = options.tokens
    if (src === undefined) tokens = Array.from({ length: nS }, (_, i) => String(i))
    else if (Array.isArray(src)) tokens = src
    else if (src instanceof Tensor && src.ndim === 2 && src.shape[0] > 1) {
      const row = src.get(options.batch ?? 0)
      owned.push(row)
      tokens = cache.model.toStrTokens(row)
    } else tokens = cache.model.toStrTokens(src)
    return attentionPatternHtml({
      tokens,
      patterns,
      headLabels: heads.map((h) => `L${L}H${h}`),
      title: options.title ?? `Attention patterns, layer ${L}`,
    })
  } finally {
    for (const t of owned) t.dispose()
  }
}
