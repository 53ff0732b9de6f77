// The actions that change the cluster: join, reset, retry, cancel, pause, resume. Each asks
// for confirmation first; join and reset show the controller's plan in the dialog.

import { post, newWorkflowID } from './api.js';
import { confirmDialog } from './dialog.js';
import { h, replace, nodeStateName } from './dom.js';

// planView shows a PlanWorkflowResponse.
export function planView(resp) {
  const wf = resp.workflow || {};
  const steps = wf.steps || [];
  const changes = resp.changes || [];
  const nodes = wf.nodes || [];
  return h('div', { class: 'plan', 'data-testid': 'plan' },
    changes.length
      ? [h('p', {}, `Plan: ${changes.length} change(s), ${steps.length} step(s) on ${nodes.length} node(s)`),
        h('ul', {}, changes.map((c) => h('li', {}, c)))]
      : h('p', {}, 'No changes: the cluster is as asked already.'),
    steps.length ? h('details', {}, h('summary', {}, `The ${steps.length} steps`),
      h('ol', {}, steps.map((s) => h('li', {}, h('span', { class: 'mono' }, s.name), s.summary ? ' — ' + s.summary : '')))) : null,
    (resp.notes || []).map((n) => h('p', { class: 'note' }, n)),
  );
}

// planned opens a dialog that plans spec() with the controller each time refresh is
// called, and creates the workflow when confirmed.
function planned({ title, fields, spec, okText, danger, onCreated }) {
  const planBox = h('div', { 'aria-live': 'polite' });
  let seq = 0;
  const dlg = confirmDialog({
    title, danger, ok: okText(), ready: false,
    body: [fields, planBox],
    onOK: async () => {
      const resp = await post('/v1/workflows', { spec: spec(), id: newWorkflowID() });
      onCreated(resp.workflow.id);
    },
  });
  const refresh = async () => {
    const mine = ++seq;
    dlg.setReady(false);
    dlg.showError(null);
    dlg.setOK(okText());
    replace(planBox, h('p', { class: 'muted' }, 'Asking the controller for the plan…'));
    try {
      const p = await post('/v1/workflows:plan', { spec: spec() });
      if (mine !== seq) return;
      replace(planBox, planView(p));
      dlg.setReady(true);
    } catch (e) {
      if (mine !== seq) return;
      replace(planBox);
      dlg.showError(e);
    }
  };
  return { dlg, refresh };
}

// joinDialog asks which enrolled node outside the cluster to join, shows the plan and
// creates the join workflow deckctl join NODE creates.
export function joinDialog(nodes, preselect, onCreated) {
  const eligible = nodes.filter((n) => !n.clusterRole && !n.lockedBy);
  if (eligible.length === 0) {
    confirmDialog({
      title: 'Join a node', ready: false, ok: 'Join',
      body: [h('p', {}, 'Every enrolled node is in the cluster or held by a workflow. Enroll a host first (deckctl token create, then deckhand-agent on the host).')],
      onOK: async () => {},
    });
    return;
  }
  const select = h('select', { id: 'join-node', 'data-testid': 'join-node' },
    eligible.map((n) => h('option', { value: n.name, selected: n.name === preselect }, `${n.name} (${nodeStateName(n.state)})`)));
  const cp = h('input', { type: 'checkbox', id: 'join-cp', 'data-testid': 'join-control-plane' });
  const fields = h('div', {},
    h('div', { class: 'field' },
      h('label', { for: 'join-node' }, 'Node'), select,
      h('label', {}, cp, 'as a control plane')),
    h('p', { class: 'muted' }, 'Prepares the node (preflight with fixes, packages, runtime, the cluster\'s images), mints a join token just in time, runs kubeadm join, waits until the node is Ready and deletes the token.'));
  const spec = () => ({ join: { node: select.value, controlPlane: cp.checked } });
  const { refresh } = planned({ title: 'Join a node to the cluster', fields, spec, okText: () => `Join ${select.value}`, onCreated });
  select.addEventListener('change', refresh);
  cp.addEventListener('change', refresh);
  refresh();
}

// resetDialog confirms deckctl reset NODE (drain timeout 5m, as deckctl's default).
export function resetDialog(node, onCreated) {
  const force = h('input', { type: 'checkbox', id: 'reset-force', 'data-testid': 'reset-force' });
  const fields = h('div', {},
    h('p', {}, `Cordons and drains ${node} through a control plane, runs kubeadm reset, cleans what kubeadm leaves behind and deletes the Node object.`),
    h('div', { class: 'field' }, h('label', {}, force, 'go on when the drain fails, and drain pods no controller manages (--force)')));
  const spec = () => ({ reset: { node, drainTimeout: '300s', force: force.checked } });
  const { refresh } = planned({ title: `Reset ${node}`, fields, spec, okText: () => `Reset ${node}`, danger: true, onCreated });
  force.addEventListener('change', refresh);
  refresh();
}

const controls = {
  retry: { title: 'Retry', text: 'Resumes the workflow from the steps that did not succeed (a join token is minted again).', danger: false },
  cancel: { title: 'Cancel', text: 'Cancels the running tasks and releases the workflow\'s nodes. Nodes part way through stay where they are.', danger: true },
  pause: { title: 'Pause', text: 'The nodes under way finish; no other node starts until you resume.', danger: false },
  resume: { title: 'Resume', text: 'Goes on with the paused workflow.', danger: false },
};

// controlDialog confirms retry, cancel, pause or resume of a workflow.
export function controlDialog(what, id, onDone) {
  const c = controls[what];
  confirmDialog({
    title: `${c.title} workflow ${id}?`, danger: c.danger, ok: `${c.title} workflow`,
    body: [h('p', {}, c.text)],
    onOK: async () => {
      const resp = await post(`/v1/workflows/${encodeURIComponent(id)}:${what}`, {});
      onDone(resp.workflow);
    },
  });
}
