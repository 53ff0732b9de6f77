// The controllers' REST API, through the dashboard (same origin). Every call carries this
// run's token in the X-Deckhand-Dashboard header; errors are google.rpc.Status bodies, read
// into APIError.

// The token is the page's secret, never a cookie: a browser sends a host's cookies to every
// port of it, so any other server on 127.0.0.1 would get one. The page takes the token from
// the printed URL (?token=), keeps it in sessionStorage (per origin, port included, and per
// tab) so a reload still works, and removes it from the address bar.
const TOKEN_KEY = 'deckhand-dashboard-token';
let token = '';

// takeToken reads the token from the URL, else from sessionStorage, and says whether the
// page has one.
export function takeToken() {
  const url = new URL(location.href);
  const fromURL = url.searchParams.get('token');
  if (fromURL !== null) {
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  }
  let stored = null;
  try {
    if (fromURL) sessionStorage.setItem(TOKEN_KEY, fromURL);
    stored = sessionStorage.getItem(TOKEN_KEY);
  } catch {
    // No sessionStorage (storage disabled): the token lasts until the page is reloaded.
  }
  token = fromURL || stored || '';
  return token !== '';
}

// auth is the header of every call. Calls send no cookies (credentials: 'omit'): the
// dashboard reads none, and those of other servers on 127.0.0.1 are none of its business.
const auth = () => ({ 'X-Deckhand-Dashboard': token });

// APIError is a failed call: the message, the reason (ERROR_REASON_ without its prefix)
// and the HTTP status.
export class APIError extends Error {
  constructor(status, message, reason, code) {
    super(message);
    this.name = 'APIError';
    this.status = status;
    this.reason = reason || '';
    this.code = code;
  }
}

// fromStatus reads a google.rpc.Status (or anything else) into an APIError.
function fromStatus(httpStatus, st, text) {
  if (st && typeof st === 'object' && 'error' in st && st.error) st = st.error; // a stream's error line
  let reason = '';
  for (const d of (st && st.details) || []) {
    if (d && d.reason) { reason = String(d.reason).replace(/^ERROR_REASON_/, ''); break; }
  }
  const message = (st && st.message) || (text || '').trim() || `HTTP ${httpStatus}`;
  return new APIError(httpStatus, message, reason, st && st.code);
}

function parse(text) {
  try { return text ? JSON.parse(text) : {}; } catch { return null; }
}

// call makes one request and returns its JSON answer.
export async function call(method, path, body, signal) {
  const init = { method, headers: { ...auth(), Accept: 'application/json' }, signal, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError(0, 'the dashboard does not answer: is deckctl dashboard still running?', 'UNAVAILABLE');
  }
  const text = await resp.text();
  const data = parse(text);
  if (!resp.ok) throw fromStatus(resp.status, data, text);
  if (data === null) throw new APIError(resp.status, 'the answer is not JSON', '');
  return data;
}

export const get = (path, signal) => call('GET', path, undefined, signal);
export const post = (path, body, signal) => call('POST', path, body === undefined ? {} : body, signal);

// query builds ?a=b&c=d from the set values of params.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// listAll reads every page of a list: key is the list's field.
export async function listAll(path, key, params, signal, maxPages = 50) {
  const out = [];
  let token = '';
  for (let page = 0; page < maxPages; page++) {
    const resp = await get(path + query({ ...params, pageToken: token }), signal);
    out.push(...(resp[key] || []));
    token = resp.nextPageToken || '';
    if (!token) return { items: out, complete: true };
  }
  return { items: out, complete: false };
}

// stream reads a server stream (one {"result": ...} or {"error": ...} JSON object a
// line) and calls onResult with each result as it comes. It returns when the stream ends
// and throws an APIError on an error line or status.
export async function stream(path, onResult, signal) {
  let resp;
  try {
    resp = await fetch(path, { headers: { ...auth(), Accept: 'application/json' }, signal, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError(0, 'the dashboard does not answer: is deckctl dashboard still running?', 'UNAVAILABLE');
  }
  if (!resp.ok) {
    const text = await resp.text();
    const first = text.split('\n').find((l) => l.trim()) || '';
    throw fromStatus(resp.status, parse(first) || parse(text), text);
  }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  const line = (l) => {
    l = l.trim();
    if (!l) return;
    const msg = parse(l);
    if (msg === null) throw new APIError(resp.status, 'a stream line is not JSON', '');
    if (msg.error) throw fromStatus(resp.status, msg.error, '');
    if (msg.result) onResult(msg.result);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      line(l);
    }
  }
  line(buf);
}

// newWorkflowID is a client-chosen workflow ID, as deckctl makes them ("wf-" and 12
// lower-case letters and digits), so a create sent twice makes one workflow.
export function newWorkflowID() {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return 'wf-' + Array.from(b, (x) => alphabet[x & 31]).join('');
}
