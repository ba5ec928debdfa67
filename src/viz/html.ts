/**
 * The shell every picture shares (src/viz/): one self-contained HTML file with inline CSS and
 * inline vanilla JS, no network. Text from callers (token strings above all) is hostile input:
 * it is escaped into HTML, and data for scripts travels as JSON in a non-executed
 * `<script type="application/json">` with `<`, `>`, `&` escaped, read with `JSON.parse` and put
 * on the page with `textContent` only. A Content-Security-Policy admits no fetch of any kind and
 * no script but the page's own (by hash), so even a mistake in escaping runs nothing.
 */
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as nodePath from 'node:path'

import { TransformerLensError } from '../errors'
import { invalidArg, stringArg } from '../utils/args'

/** `s` safe as HTML text and as a double- or single-quoted attribute value. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string)
}

/** JSON for a `<script type="application/json">` block: no `</script>`, `<!--` or line separators can end it. */
export function jsonForScript(v: unknown): string {
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/** A number as a short label: 4 significant digits, exponent form for very large or small. */
export function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return '+∞'
  if (v === -Infinity) return '−∞'
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2)
  return String(Number(v.toPrecision(4)))
}

/** A token as a label: whitespace other than spaces made visible, control characters escaped. */
export function showToken(s: string): string {
  if (s === '') return '∅'
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => {
    if (c === '\n') return '↵'
    if (c === '\t') return '⇥'
    if (c === '\r') return '␍'
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`
  })
}

const CSS = `
:root{color-scheme:light;font:13px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1b1b1b;background:#fff}
body{margin:16px 20px}
h1{font-size:17px;font-weight:600;margin:0 0 12px}
.mono,.tok{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
.tok{white-space:pre}
#tip{position:fixed;left:0;top:0;z-index:10;max-width:460px;padding:6px 9px;border-radius:4px;background:rgba(24,24,27,.94);color:#fff;font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;white-space:pre-wrap;overflow-wrap:anywhere;pointer-events:none;box-shadow:0 2px 8px rgba(0,0,0,.25)}
#tip[hidden]{display:none}
.legend{display:flex;align-items:center;gap:8px;margin:12px 0 4px;font-size:12px;color:#444}
.legend .bar{width:240px;height:12px;border:1px solid #aaa;border-radius:2px}
.legend .swatch{display:inline-block;width:14px;height:12px;border:1px solid #aaa;vertical-align:middle;margin-right:3px}
.nan{background-image:repeating-linear-gradient(45deg,rgba(0,0,0,.28) 0 2px,transparent 2px 6px)}
.inf{box-shadow:inset 0 0 0 2px #f2c200}
`

/** Shows `#tip` for elements carrying `data-tip`; pictures with computed tips call `tlTip.show`. */
const TIP_JS = `
var tip=document.getElementById('tip');
function placeTip(e){var p=14,w=tip.offsetWidth,h=tip.offsetHeight,x=e.clientX+p,y=e.clientY+p;
if(x+w>innerWidth-4)x=Math.max(4,e.clientX-p-w);if(y+h>innerHeight-4)y=Math.max(4,e.clientY-p-h);
tip.style.left=x+'px';tip.style.top=y+'px'}
var tlTip={show:function(e,text){tip.textContent=text;tip.hidden=false;placeTip(e)},hide:function(){tip.hidden=true}};
document.addEventListener('mouseover',function(e){var t=e.target;if(!(t instanceof Element))return;
var el=t.closest('[data-tip]');if(el)tlTip.show(e,el.getAttribute('data-tip'));else if(!t.closest('[data-tip-dyn]'))tlTip.hide()});
document.addEventListener('mousemove',function(e){if(!tip.hidden)placeTip(e)});
document.documentElement.addEventListener('mouseleave',function(){tlTip.hide()});
`

export interface PageParts {
  title: string
  /** HTML already escaped by the caller. */
  body: string
  /** Extra CSS for this picture. */
  css?: string
  /** Data for the script, read with `JSON.parse(document.getElementById('tl-data').textContent)`. */
  data?: unknown
  /** This picture's script (constant text: data goes in `data`); runs after the tooltip code. */
  script?: string
}

/** The complete HTML document. */
export function pageHtml(parts: PageParts): string {
  const js = `(function(){'use strict';${TIP_JS}${parts.script ?? ''}})();`
  const hash = createHash('sha256').update(js, 'utf8').digest('base64')
  const csp = `default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-${hash}'; base-uri 'none'; form-action 'none'`
  const title = escapeHtml(parts.title)
  const data = parts.data === undefined ? '' : `<script type="application/json" id="tl-data">${jsonForScript(parts.data)}</script>\n`
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="transformer-lens">
<title>${title}</title>
<style>${CSS}${parts.css ?? ''}</style>
</head>
<body>
<h1>${title}</h1>
${parts.body}
<div id="tip" role="tooltip" hidden></div>
${data}<script>${js}</script>
</body>
</html>
`
}

/**
 * Writes a picture to `file` (UTF-8), creating its folder; returns the absolute path, ready to
 * open in a browser.
 */
export function writeHtml(file: string, html: string): string {
  stringArg('path', file)
  if (typeof html !== 'string') throw invalidArg('html', 'a string', html)
  const abs = nodePath.resolve(file)
  try {
    fs.mkdirSync(nodePath.dirname(abs), { recursive: true })
    fs.writeFileSync(abs, html, 'utf8')
  } catch (e) {
    throw new TransformerLensError('TL_IO', `could not write ${abs}: ${(e as Error).message}`, { cause: e })
  }
  return abs
}
