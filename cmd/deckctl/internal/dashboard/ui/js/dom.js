// Small helpers to build the page: elements from text only (never HTML), and how
// states, times and sizes read.

// h builds an element: attrs are attributes ("on..." are listeners, "data-*", "aria-*"
// and the rest set as attributes); children are nodes, strings or arrays of them (null and
// false are skipped).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

// replace puts children in place of el's.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// enumName is an API enum value without its prefix, in lower case: STEP_STATE_RUNNING → running.
export function enumName(v, prefix) {
  if (!v) return 'unknown';
  return String(v).replace(prefix, '').toLowerCase().replace(/_/g, '-');
}

// badge is a state as a colored label (the text says it too).
export function badge(text, cls, testid) {
  return h('span', { class: 'state ' + (cls || text), 'data-testid': testid }, text);
}

export function dash(v) {
  return v === undefined || v === null || v === '' ? '—' : String(v);
}

// seconds reads a protobuf Duration in JSON ("1.5s").
export function seconds(d) {
  if (!d) return 0;
  return parseFloat(String(d)) || 0;
}

// duration reads milliseconds as "850ms", "12s", "3m 4s", "2h 5m".
export function duration(ms) {
  if (ms === undefined || ms === null || isNaN(ms)) return '';
  if (ms < 0) ms = 0;
  if (ms < 1000) return Math.round(ms) + 'ms';
  const s = Math.floor(ms / 1000);
  if (s < 60) return (ms / 1000).toFixed(s < 10 ? 1 : 0) + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hr = Math.floor(m / 60);
  if (hr < 48) return `${hr}h ${m % 60}m`;
  return `${Math.floor(hr / 24)}d ${hr % 24}h`;
}

// age is how long ago a timestamp was: "12s", "5m", "3h", "2d".
export function age(ts) {
  if (!ts) return '—';
  const ms = Date.now() - Date.parse(ts);
  if (isNaN(ms)) return '—';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 48 * 3600) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

// time is a timestamp in local time, with a title that has the full date.
export function time(ts, withDate) {
  if (!ts) return h('span', {}, '—');
  const d = new Date(ts);
  const text = withDate ? d.toLocaleString() : d.toLocaleTimeString();
  return h('time', { datetime: ts, title: d.toLocaleString() }, text);
}

// bytes reads a size: 1.5 GiB.
export function bytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

// amount reads a progress value in its unit.
export function amount(n, unit) {
  return unit === 'bytes' ? bytes(n) : String(n || 0);
}

// nodeStateName is how deckctl shows a node state: Ready, NotReady, Lost, Enrolled.
export function nodeStateName(v) {
  return { ready: 'Ready', 'not-ready': 'NotReady', lost: 'Lost', enrolled: 'Enrolled' }[enumName(v, 'NODE_STATE_')] || 'Unknown';
}
