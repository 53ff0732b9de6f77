// Audit: every call that changed something (or tried), newest first, live.

import { listAll, stream, query } from './api.js';
import { h, replace, badge, duration, seconds, time } from './dom.js';

const MAX_EVENTS = 2000;
const ranges = [['1h', 3600], ['24h', 86400], ['7d', 7 * 86400]];

function methodName(m) {
  const parts = String(m || '').split('/').filter(Boolean);
  const svc = (parts[0] || '').split('.').pop();
  return { svc, method: parts[1] || m };
}

export function auditView(ctx) {
  const who = h('input', { id: 'audit-who', 'data-testid': 'audit-who', placeholder: 'name or role', size: 14 });
  const node = h('input', { id: 'audit-node', 'data-testid': 'audit-node', placeholder: 'node', size: 12 });
  const range = h('select', { id: 'audit-range', 'aria-label': 'Since' }, ranges.map(([t]) => h('option', { value: t, selected: t === '24h' }, 'last ' + t)));
  const liveEl = h('span', { class: 'live', 'data-testid': 'live' }, 'connecting');
  const note = h('div', {});
  const tbody = h('tbody');
  const form = h('div', { class: 'bar', role: 'search' },
    h('label', { for: 'audit-who' }, 'Who'), who,
    h('label', { for: 'audit-node' }, 'Node'), node, range,
    h('button', { type: 'button', 'data-testid': 'audit-apply', onclick: () => restart() }, 'Show'));
  for (const el of [who, node]) el.addEventListener('keydown', (e) => { if (e.key === 'Enter') restart(); });
  range.addEventListener('change', () => restart());
  replace(ctx.main,
    h('div', { class: 'bar' }, h('h1', {}, 'Audit trail'), liveEl),
    form, note,
    h('table', { 'data-testid': 'audit-table', 'aria-label': 'Audited calls, newest first' },
      h('thead', {}, h('tr', {}, ['Time', 'Who', 'Call', 'About', 'Result', 'Took', 'From', 'Request'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody));

  let events = new Map(); // id → event
  let run = null; // the current listing's AbortController

  function row(e) {
    const { svc, method } = methodName(e.method);
    const ok = e.code === 'OK';
    const about = [e.target, ...(e.nodes || []).filter((n) => n !== e.target)].filter(Boolean).join(', ');
    return h('tr', { 'data-testid': 'audit-row', 'data-method': method, 'data-subject': e.subject || '', 'data-code': e.code || '' },
      h('td', {}, time(e.time, true)),
      h('td', {}, h('span', { 'data-testid': 'audit-subject' }, e.subject || '(no certificate)'), h('div', { class: 'muted' }, e.role || '')),
      h('td', { title: e.method }, h('span', { 'data-testid': 'audit-method' }, method), h('div', { class: 'muted' }, svc)),
      h('td', { class: 'mono' }, about || '—'),
      h('td', {}, badge(ok ? 'OK' : (e.code || 'unknown'), ok ? 'succeeded' : 'failed'),
        e.reason ? h('div', { class: 'mono muted' }, e.reason.replace(/^ERROR_REASON_/, '')) : null,
        e.message ? h('div', { class: 'muted' }, e.message) : null),
      h('td', {}, e.duration ? duration(seconds(e.duration) * 1000) : '—'),
      h('td', {}, e.transport || '', h('div', { class: 'muted mono' }, e.peer || ''), e.replica ? h('div', { class: 'muted' }, 'answered by ' + e.replica) : null),
      h('td', {}, e.request ? h('details', {}, h('summary', {}, 'request'), h('pre', { class: 'request' }, e.request)) : '—'));
  }

  let queued = false;
  function render() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      const list = Array.from(events.values()).sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
      if (list.length > MAX_EVENTS) {
        for (const e of list.slice(MAX_EVENTS)) events.delete(e.id);
        list.length = MAX_EVENTS;
      }
      if (list.length === 0) {
        replace(tbody, h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No audited call in this range.')));
        return;
      }
      replace(tbody, list.map(row));
    });
  }

  function add(e) {
    if (!e || !e.id) return;
    events.set(e.id, e);
    render();
  }

  async function watch(filter, signal) {
    while (!signal.aborted) {
      liveEl.className = 'live on';
      liveEl.textContent = 'live';
      try {
        await stream('/v1/audit:watch' + query(filter), (r) => add(r.event), signal);
      } catch (e) {
        if (e.name === 'AbortError') return;
        ctx.report(e);
      }
      liveEl.className = 'live';
      liveEl.textContent = 'reconnecting';
      await ctx.sleep(2000);
    }
  }

  async function restart() {
    if (run) run.abort();
    run = new AbortController();
    ctx.signal.addEventListener('abort', () => run.abort(), { once: true });
    const signal = run.signal;
    events = new Map();
    replace(note);
    replace(tbody, h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'Loading…')));
    const filter = { who: who.value.trim(), node: node.value.trim() };
    // The watch first, then the list: what is recorded in between comes by one or the
    // other (both are keyed by ID).
    watch(filter, signal);
    const secs = (ranges.find(([t]) => t === range.value) || ranges[1])[1];
    const since = new Date(Date.now() - secs * 1000).toISOString();
    try {
      // Newest first: the pages that fit are the latest calls.
      const r = await listAll('/v1/audit', 'events', { ...filter, since, pageSize: 1000, newestFirst: true }, signal, Math.ceil(MAX_EVENTS / 1000));
      ctx.ok();
      r.items.forEach((e) => events.set(e.id, e));
      if (!r.complete) replace(note, h('p', { class: 'note' }, 'More calls than the page holds were recorded in this range: the newest are shown. Narrow it with Who, Node or a shorter range.'));
      render();
    } catch (e) {
      if (e.name !== 'AbortError') ctx.report(e);
    }
  }

  restart();
}
