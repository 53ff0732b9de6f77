// The dashboard's page: a router over hash routes, the session, the error banner.

import { get, takeToken } from './api.js';
import { closeDialog } from './dialog.js';
import { h, replace } from './dom.js';
import { nodesView } from './nodes.js';
import { clusterView } from './cluster.js';
import { workflowsView, workflowView } from './workflows.js';
import { auditView } from './audit.js';

const routes = [
  [/^#\/nodes$/, nodesView, 'nodes'],
  [/^#\/cluster$/, clusterView, 'cluster'],
  [/^#\/workflows$/, workflowsView, 'workflows'],
  [/^#\/workflows\/([A-Za-z0-9._-]+)$/, workflowView, 'workflows'],
  [/^#\/audit$/, auditView, 'audit'],
];

const session = { subject: '', role: '', canWrite: false };
let active = null; // the view's AbortController

const banner = () => document.getElementById('error');

// showError shows an API error (its message and reason) until cleared.
function showError(e) {
  if (!e || e.name === 'AbortError') return;
  replace(banner(), e.message || String(e), e.reason ? h('span', { class: 'reason' }, e.reason) : null);
  banner().hidden = false;
}

function clearError() {
  banner().hidden = true;
}

// context is what a view gets: its abort signal (aborted when the route changes), error
// reporting, timers that stop with the view, navigation and the session.
function context(ac) {
  const ctx = {
    signal: ac.signal,
    session,
    main: document.getElementById('main'),
    report: showError,
    ok: clearError,
    navigate: (hash) => { location.hash = hash; },
    // every runs fn now and then each ms until the view goes (fn may be async; a run
    // does not start while the previous one is under way).
    every(ms, fn) {
      let busy = false;
      const tick = async () => {
        if (busy || ac.signal.aborted) return;
        busy = true;
        try { await fn(); } catch (e) { if (e.name !== 'AbortError') showError(e); } finally { busy = false; }
      };
      tick();
      const t = setInterval(tick, ms);
      ac.signal.addEventListener('abort', () => clearInterval(t));
    },
    // sleep waits ms, or until the view goes.
    sleep(ms) {
      return new Promise((resolve) => {
        const t = setTimeout(resolve, ms);
        ac.signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
      });
    },
  };
  return ctx;
}

function route() {
  if (active) active.abort();
  closeDialog();
  clearError();
  const hash = location.hash || '#/nodes';
  let found = null;
  for (const [re, view, section] of routes) {
    const m = hash.match(re);
    if (m) { found = { view, section, args: m.slice(1).map(decodeURIComponent) }; break; }
  }
  if (!found) {
    location.replace('#/nodes');
    return;
  }
  for (const a of document.querySelectorAll('.top nav a')) {
    if (a.getAttribute('href') === '#/' + found.section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  active = new AbortController();
  const ctx = context(active);
  replace(ctx.main);
  found.view(ctx, ...found.args);
}

async function start() {
  if (!takeToken()) {
    // Nothing works without the token: say where it is, and stop.
    showError({ message: `No dashboard token in this tab: open the URL deckctl dashboard printed (http://${location.host}/?token=...).` });
    return;
  }
  try {
    const s = await get('/dashboard/session');
    session.subject = s.subject || '';
    session.role = s.role || '';
    session.canWrite = s.role === 'admin' || s.role === 'operator';
    document.getElementById('who').textContent = `${session.subject} (${session.role})`;
  } catch (e) {
    showError(e);
    if (e.status === 401) return; // a token of another run: every view would be refused
  }
  window.addEventListener('hashchange', route);
  route();
}

start();
