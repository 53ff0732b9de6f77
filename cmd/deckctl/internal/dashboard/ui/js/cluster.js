// Cluster: the Kubernetes cluster as Deckhand recorded it.

import { get } from './api.js';
import { h, replace, dash, age, time, enumName } from './dom.js';

function row(label, value) {
  return [h('dt', {}, label), h('dd', {}, value === undefined || value === null || value === '' ? '—' : value)];
}

export function clusterView(ctx) {
  const body = h('div', { 'data-testid': 'cluster' }, h('p', { class: 'muted' }, 'Loading…'));
  replace(ctx.main, h('div', { class: 'bar' }, h('h1', {}, 'Cluster')), body);
  let shown = '';
  ctx.every(10000, async () => {
    const resp = await get('/v1/cluster', ctx.signal);
    ctx.ok();
    const key = JSON.stringify(resp);
    if (key === shown) return;
    shown = key;
    const c = resp.cluster;
    if (!c) {
      replace(body, h('p', { class: 'empty', 'data-testid': 'no-cluster' }, 'No cluster yet: deckctl init NODE or deckctl apply -f cluster.yaml creates one.'));
      return;
    }
    const s = c.spec || {};
    const reg = s.registry || {};
    const lb = s.loadBalancer;
    const network = (s.networkProvider || 'bridge') + (s.networkProviderVersion ? ' ' + s.networkProviderVersion : '');
    const nodes = c.nodes || [];
    replace(body,
      h('dl', { class: 'facts' },
        row('Kubernetes', s.kubernetesVersion),
        row('Name', s.clusterName || 'kubernetes'),
        row('Control plane endpoint', s.controlPlaneEndpoint),
        row('Load balancer', lb ? [lb.type, lb.address, lb.port].filter(Boolean).join(' ') : ''),
        row('Pod network', `${network}, pods from ${s.podSubnet || '10.244.0.0/16'}`),
        row('Services', s.serviceSubnet || '10.96.0.0/12'),
        row('Images', [reg.imageRepository || 'registry.k8s.io', ...(reg.mirrors || []).map((m) => 'mirror ' + m)].join(', ')),
        row('Cgroup driver', s.cgroupDriver),
        row('CA hash', h('span', { class: 'mono' }, dash(c.caCertHash))),
        row('Created', time(c.created, true)),
        row('Updated', time(c.updated, true))),
      h('h2', {}, `Nodes (${nodes.length})`),
      h('table', { 'data-testid': 'cluster-nodes', 'aria-label': 'Nodes in the cluster' },
        h('thead', {}, h('tr', {}, ['Node', 'Role', 'Address', 'Pod CIDR', 'Kubelet', 'Control plane', 'Joined', 'Workflow'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, nodes.map((n) => h('tr', { 'data-testid': 'cluster-node', 'data-node': n.name },
          h('th', { scope: 'row' }, n.name),
          h('td', {}, enumName(n.role, 'NODE_ROLE_')),
          h('td', { class: 'mono' }, dash(n.address)),
          h('td', { class: 'mono' }, dash(n.podCidr)),
          h('td', {}, dash(n.kubeletVersion)),
          h('td', {}, dash(n.controlPlaneVersion)),
          h('td', { title: n.joined ? new Date(n.joined).toLocaleString() : null }, age(n.joined)),
          h('td', {}, n.workflowId ? h('a', { href: '#/workflows/' + encodeURIComponent(n.workflowId), class: 'mono' }, n.workflowId) : '—'))))));
  });
}
