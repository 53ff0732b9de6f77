// Workflows: the list, and one workflow's live timeline (one row per node, one cell per
// step with its state, duration and progress) with the node's logs as they come.

import { get, stream } from './api.js';
import { controlDialog } from './actions.js';
import { h, replace, badge, dash, age, time, duration, amount } from './dom.js';
import { wfKind, wfState, stepState, terminal, laneOf, shortName, taskKey, stepKeyOfTask } from './workflow-kind.js';

function wfDuration(wf) {
  const start = Date.parse(wf.created);
  const end = terminal(wf) ? Date.parse(wf.updated) : Date.now();
  return duration(end - start);
}

export function workflowsView(ctx) {
  const tbody = h('tbody');
  replace(ctx.main,
    h('div', { class: 'bar' }, h('h1', {}, 'Workflows')),
    h('table', { 'data-testid': 'workflows-table', 'aria-label': 'Workflows, newest first' },
      h('thead', {}, h('tr', {}, ['ID', 'What', 'State', 'Steps', 'Created', 'Took', 'Failed step', 'By'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody));
  ctx.every(3000, async () => {
    const resp = await get('/v1/workflows?pageSize=100', ctx.signal);
    ctx.ok();
    const wfs = resp.workflows || [];
    if (wfs.length === 0) {
      replace(tbody, h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No workflow yet. Join a node from the Nodes page, or run deckctl init / apply.')));
      return;
    }
    replace(tbody, wfs.map((wf) => {
      const steps = wf.steps || [];
      const done = steps.filter((s) => ['succeeded', 'skipped'].includes(stepState(s.state))).length;
      const st = wfState(wf.state);
      return h('tr', { 'data-testid': 'workflow-row', 'data-workflow': wf.id },
        h('th', { scope: 'row' }, h('a', { href: '#/workflows/' + encodeURIComponent(wf.id), class: 'mono' }, wf.id)),
        h('td', {}, wfKind(wf)),
        h('td', {}, badge(st + (wf.paused ? ' (paused)' : ''), st)),
        h('td', {}, `${done}/${steps.length}`),
        h('td', { title: new Date(wf.created).toLocaleString() }, age(wf.created)),
        h('td', {}, wfDuration(wf)),
        h('td', { class: 'mono' }, dash(wf.failedStep)),
        h('td', {}, dash(wf.createdBy)));
    }));
  });
}

// stepText is a step's state with what matters about it now, as deckctl's live view says.
function stepText(s) {
  const st = stepState(s.state);
  const tries = s.attempts || 0;
  if (st === 'running' && tries > 1) return `running (try ${tries} of ${s.maxAttempts})`;
  if (st === 'pending' && s.error) return tries > 0 ? `retrying (${tries} of ${s.maxAttempts} tries failed)` : 'waiting';
  return st;
}

function stepMillis(s) {
  if (!s.started) return null;
  const end = s.finished ? Date.parse(s.finished) : (stepState(s.state) === 'running' ? Date.now() : null);
  return end === null ? null : end - Date.parse(s.started);
}

const MAX_LINES = 5000; // per node kept in the page

export function workflowView(ctx, id) {
  let wf = null;
  let selected = ''; // the node whose logs show
  let picked = false; // the user chose it
  let progress = {}; // task ID → latest Progress
  let logs = new Map(); // lane → [{time, step, stream, text}]
  let pending = []; // events whose step is not known yet
  let stepByKey = new Map(); // taskKey → step
  let renderQueued = false;
  let live = false;

  const liveEl = h('span', { class: 'live', 'data-testid': 'live' }, 'connecting');
  const announce = h('p', { class: 'visually-hidden', role: 'status' }); // the state, for screen readers
  const buttons = h('span', { class: 'bar-buttons' });
  const summary = h('dl', { class: 'facts', 'data-testid': 'workflow-summary' });
  const failure = h('div', { 'data-testid': 'workflow-error' });
  const timeline = h('div', { class: 'timeline', 'data-testid': 'timeline', 'aria-label': 'Steps per node' });
  const nodeSelect = h('select', { id: 'log-node', 'data-testid': 'log-node', 'aria-label': 'Node whose logs show' });
  const follow = h('input', { type: 'checkbox', checked: true, id: 'log-follow' });
  // A log role, but not read aloud line by line: the state below is.
  const logEl = h('pre', { class: 'log', 'data-testid': 'log-pane', role: 'log', 'aria-live': 'off', 'aria-label': 'Log lines', tabindex: '0' });
  const logTitle = h('h2', {}, 'Logs');
  replace(ctx.main,
    h('div', { class: 'bar' }, h('h1', {}, 'Workflow ', h('span', { class: 'mono' }, id)), liveEl, buttons),
    announce,
    summary, failure, timeline,
    h('section', { class: 'logs', 'aria-label': 'Logs' },
      h('div', { class: 'logs-head' }, logTitle, nodeSelect, h('label', {}, follow, 'follow'),
        h('span', { class: 'muted' }, 'choose a node here or by its name in the timeline')),
      logEl));

  nodeSelect.addEventListener('change', () => { pick(nodeSelect.value); });

  function pick(node) {
    selected = node;
    picked = true;
    renderLogs();
    render();
  }

  function setLive(on, text) {
    live = on;
    liveEl.className = 'live' + (on ? ' on' : '');
    liveEl.textContent = text;
  }

  function lanes() {
    const out = new Map();
    for (const s of (wf && wf.steps) || []) {
      const l = laneOf(s);
      if (!out.has(l)) out.set(l, []);
      out.get(l).push(s);
    }
    return out;
  }

  function logLine(e) {
    const cls = e.stream === 'stderr' ? 'stderr' : e.stream === 'agent' ? 'agent' : '';
    const t = e.time ? new Date(e.time).toLocaleTimeString() : '';
    return h('span', { class: 'line ' + cls }, h('span', { class: 't' }, t), ' ', h('span', { class: 's' }, e.step), ' ', e.text, '\n');
  }

  function renderLogs() {
    const lines = logs.get(selected) || [];
    logTitle.textContent = selected ? `Logs of ${selected}` : 'Logs';
    replace(logEl, lines.length ? lines.map(logLine) : h('span', { class: 't placeholder' }, selected ? 'No log line yet.' : ''));
    if (follow.checked) logEl.scrollTop = logEl.scrollHeight;
  }

  function addEvent(ev) {
    const step = stepByKey.get(stepKeyOfTask(ev.taskId));
    if (!step) { pending.push(ev); return; }
    if (ev.progress) {
      progress[ev.taskId] = ev.progress;
      queueRender();
    }
    if (ev.log) {
      const lane = laneOf(step);
      if (!logs.has(lane)) logs.set(lane, []);
      const arr = logs.get(lane);
      const e = { time: ev.time, step: shortName(step), stream: ev.log.stream, text: ev.log.text || '' };
      arr.push(e);
      if (arr.length > MAX_LINES) arr.splice(0, arr.length - MAX_LINES);
      if (lane === selected) {
        const placeholder = logEl.querySelector('.placeholder');
        if (placeholder) placeholder.remove();
        logEl.append(logLine(e));
        while (logEl.childNodes.length > MAX_LINES) logEl.firstChild.remove();
        if (follow.checked) logEl.scrollTop = logEl.scrollHeight;
      }
    }
  }

  function onWorkflow(next) {
    wf = next;
    stepByKey = new Map((wf.steps || []).map((s) => [taskKey(wf.id, s.name), s]));
    const waiting = pending;
    pending = [];
    waiting.forEach(addEvent);
    if (!picked) {
      const ls = lanes();
      const running = (wf.steps || []).find((s) => stepState(s.state) === 'running');
      const first = running ? laneOf(running) : ls.keys().next().value || '';
      if (first && first !== selected) { selected = first; renderLogs(); }
    }
    queueRender();
  }

  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  function stepCell(s) {
    const st = stepState(s.state);
    const ms = stepMillis(s);
    const p = progress[s.taskId] || (st === 'running' ? s.progress : null);
    const lane = laneOf(s);
    return h('li', { class: 'step ' + st, 'data-testid': 'step', 'data-step': s.name, 'data-state': st, title: s.summary || null },
      h('div', { class: 'name' }, shortName(s)),
      h('div', { class: 'detail' }, h('span', { class: 'state-text' }, stepText(s)), ms !== null ? ' · ' + duration(ms) : ''),
      p && st === 'running' ? [
        p.total && Number(p.total) > 0 ? h('progress', { max: String(p.total), value: String(p.done || 0), 'aria-label': `${shortName(s)} progress` }) : null,
        h('div', { class: 'detail' }, `${(p.item || '').split('/').pop()} ${amount(p.done, p.unit)}${p.total && Number(p.total) > 0 ? ' / ' + amount(p.total, p.unit) : ''}`)] : null,
      s.node && s.node !== lane ? h('div', { class: 'detail' }, 'on ' + s.node) : null,
      st === 'failed' && s.error ? h('div', { class: 'error' }, s.error.message) : null);
  }

  function render() {
    if (!wf) return;
    const st = wfState(wf.state);
    const steps = wf.steps || [];
    const done = steps.filter((s) => ['succeeded', 'skipped'].includes(stepState(s.state))).length;
    const said = `Workflow ${st}`;
    if (announce.textContent !== said) announce.textContent = said;
    replace(summary,
      h('dt', {}, 'What'), h('dd', { 'data-testid': 'workflow-kind' }, wfKind(wf)),
      h('dt', {}, 'State'), h('dd', {}, badge(st + (wf.paused ? ' (paused)' : ''), st, 'workflow-state')),
      h('dt', {}, 'Steps'), h('dd', {}, `${done} of ${steps.length} done`),
      h('dt', {}, 'Created'), h('dd', {}, time(wf.created, true), wf.createdBy ? ' by ' + wf.createdBy : ''),
      h('dt', {}, 'Took'), h('dd', {}, wfDuration(wf) + (terminal(wf) ? '' : ' so far')));
    replace(failure, wf.error ? h('div', { class: 'failure' },
      h('strong', {}, wf.failedStep ? `${wf.failedStep} failed: ` : 'Failed: '), wf.error.message || '',
      wf.error.hint ? h('div', {}, wf.error.hint) : null,
      wf.error.reason ? h('span', { class: 'reason mono' }, ' ' + wf.error.reason) : null) : null);

    const ls = lanes();
    replace(timeline, Array.from(ls, ([lane, ss]) => h('div', { class: 'lane', 'data-testid': 'lane', 'data-lane': lane },
      h('button', { type: 'button', class: 'lane-name', 'aria-pressed': String(lane === selected), onclick: () => pick(lane), title: `Show the logs of ${lane}` }, lane),
      h('ol', { class: 'steps', 'aria-label': `Steps of ${lane}` }, ss.map(stepCell)))));

    const names = Array.from(ls.keys());
    if (nodeSelect.options.length !== names.length || names.some((n, i) => nodeSelect.options[i].value !== n)) {
      replace(nodeSelect, names.map((n) => h('option', { value: n }, n)));
    }
    nodeSelect.value = selected;

    const canWrite = ctx.session.canWrite;
    const action = (what, label, danger) => h('button', {
      type: 'button', class: danger ? 'danger' : '', 'data-testid': what + '-button', disabled: !canWrite,
      onclick: () => controlDialog(what, wf.id, (next) => { if (next) onWorkflow(next); if (!live) followWatch(); }),
    }, label);
    const btns = [];
    if (st === 'failed' || st === 'cancelled') btns.push(action('retry', 'Retry…'));
    if (!terminal(wf)) {
      // Pausing lets the nodes under way finish and starts no other: an upgrade's batches.
      if (wf.paused) btns.push(action('resume', 'Resume…'));
      else if ((wf.spec || {}).upgrade) btns.push(action('pause', 'Pause…'));
      btns.push(action('cancel', 'Cancel…', true));
    }
    const keyOf = (bs) => bs.map((b) => b.dataset.testid).join(',');
    if (keyOf(Array.from(buttons.children)) !== keyOf(btns)) replace(buttons, btns);
  }

  // followWatch streams the workflow until it ends: every stream starts with every
  // recorded event, so each one rebuilds the logs; a broken one is followed by another.
  let following = false;
  async function followWatch() {
    if (following) return;
    following = true;
    try {
      while (!ctx.signal.aborted) {
        progress = {};
        logs = new Map();
        pending = [];
        let first = true;
        setLive(true, 'live');
        try {
          await stream(`/v1/workflows/${encodeURIComponent(id)}:watch`, (r) => {
            if (first) { first = false; ctx.ok(); renderLogs(); }
            if (r.workflow) onWorkflow(r.workflow);
            else if (r.event) addEvent(r.event);
          }, ctx.signal);
        } catch (e) {
          if (e.name === 'AbortError') return;
          ctx.report(e);
          if (e.status === 404 || e.reason === 'NOT_FOUND') { setLive(false, 'not found'); return; }
        }
        if (wf && terminal(wf)) { setLive(false, 'ended'); render(); return; }
        setLive(false, 'reconnecting');
        await ctx.sleep(1500);
      }
    } finally {
      following = false;
    }
  }

  // Durations of running steps tick.
  ctx.every(1000, () => { if (wf && !terminal(wf)) queueRender(); });
  followWatch();
}
