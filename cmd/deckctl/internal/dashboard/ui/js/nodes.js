// Nodes: every enrolled host with its state and facts; join and reset from here.

import { listAll } from './api.js';
import { joinDialog, resetDialog } from './actions.js';
import { h, replace, badge, dash, age, bytes, enumName, nodeStateName } from './dom.js';

function nodeState(n) {
  return badge(nodeStateName(n.state), enumName(n.state, 'NODE_STATE_'), 'node-state');
}

function osOf(f) {
  return f.osName || [f.osId, f.osVersion].filter(Boolean).join(' ');
}

function addressOf(f) {
  return f.routeAddress || (f.ipAddresses || [])[0] || '';
}

export function nodesView(ctx) {
  let nodes = [];
  let shown = '';
  const created = (id) => ctx.navigate('#/workflows/' + encodeURIComponent(id));
  // Enabled once the first list arrived: the dialog offers the nodes not in the cluster,
  // and before that it would say there are none.
  const joinBtn = h('button', {
    class: 'primary', 'data-testid': 'join-button', disabled: true,
    title: ctx.session.canWrite ? 'loading the nodes…' : 'a viewer credential reads only',
    onclick: () => joinDialog(nodes, '', created),
  }, 'Join a node…');
  const tbody = h('tbody');
  const count = h('span', { class: 'muted', 'data-testid': 'nodes-count' });
  replace(ctx.main,
    h('div', { class: 'bar' }, h('h1', {}, 'Nodes'), count, joinBtn),
    h('table', { 'data-testid': 'nodes-table', 'aria-label': 'Enrolled nodes' },
      h('thead', {}, h('tr', {}, ['Name', 'State', 'Cluster role', 'Address', 'OS', 'Kernel', 'CPU / memory', 'Runtime', 'Kubernetes', 'State since', ''].map((t) => h('th', { scope: 'col' }, t)))),
      tbody));

  function row(n) {
    const f = n.facts || {};
    const rt = f.runtime && f.runtime.version ? `${f.runtime.name || 'runtime'} ${f.runtime.version}` : '';
    const kube = (f.kubeVersions || {}).kubelet || '';
    const inCluster = !!n.clusterRole;
    const actions = [];
    if (ctx.session.canWrite && !n.lockedBy) {
      actions.push(inCluster
        ? h('button', { class: 'small', 'data-testid': 'reset-node', onclick: () => resetDialog(n.name, created) }, 'Reset…')
        : h('button', { class: 'small', 'data-testid': 'join-node-button', onclick: () => joinDialog(nodes, n.name, created) }, 'Join…'));
    }
    return h('tr', { 'data-testid': 'node-row', 'data-node': n.name },
      h('th', { scope: 'row' }, n.name, n.agentVersion ? h('div', { class: 'muted mono', title: 'agent build' }, n.agentVersion.split(' ')[0]) : null),
      h('td', {}, nodeState(n)),
      h('td', {}, inCluster ? n.clusterRole : h('span', { class: 'muted' }, 'not in the cluster'),
        n.lockedBy ? h('div', { class: 'muted' }, 'held by ', h('a', { href: '#/workflows/' + encodeURIComponent(n.lockedBy) }, n.lockedBy)) : null),
      h('td', { class: 'mono' }, dash(addressOf(f))),
      h('td', {}, dash(osOf(f))),
      h('td', { class: 'mono' }, dash(f.kernel)),
      h('td', {}, f.cpus ? `${f.cpus} CPU, ${bytes(f.memoryBytes)}` : '—'),
      h('td', {}, dash(rt)),
      h('td', {}, dash(kube), f.controlPlaneVersion ? h('div', { class: 'muted' }, 'control plane ' + f.controlPlaneVersion) : null),
      h('td', { title: n.stateChanged ? new Date(n.stateChanged).toLocaleString() : null }, age(n.stateChanged)),
      h('td', { class: 'actions' }, actions));
  }

  let renders = 0;
  ctx.every(5000, async () => {
    const r = await listAll('/v1/nodes', 'nodes', { pageSize: 1000 }, ctx.signal, 10);
    ctx.ok();
    nodes = r.items;
    if (ctx.session.canWrite && joinBtn.disabled) {
      joinBtn.disabled = false;
      joinBtn.removeAttribute('title');
    }
    const key = JSON.stringify(nodes);
    if (key === shown && ++renders % 6 !== 0) return; // ages refresh every 30 s
    shown = key;
    count.textContent = `${nodes.length} enrolled, ${nodes.filter((n) => n.clusterRole).length} in the cluster`;
    if (nodes.length === 0) {
      replace(tbody, h('tr', {}, h('td', { colspan: 11, class: 'empty' }, 'No node is enrolled yet: deckctl token create, then start deckhand-agent on a host with it.')));
      return;
    }
    replace(tbody, nodes.map(row));
  });
}
