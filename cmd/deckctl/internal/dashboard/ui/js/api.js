// The controllers' REST API, through the dashboard (same origin). Every call carries the
// dashboard's mark header; errors are google.rpc.Status bodies, read into APIError.

const MARK = { 'X-Deckhand-Dashboard': '1' };

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
  const init = { method, headers: { ...MARK, Accept: 'application/json' }, signal, credentials: 'same-origin', cache: 'no-store' };
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
    resp = await fetch(path, { headers: { ...MARK, Accept: 'application/json' }, signal, credentials: 'same-origin', cache: 'no-store' });
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
