// How workflows and their steps read, as deckctl shows them.

import { enumName } from './dom.js';

export const wfState = (s) => enumName(s, 'WORKFLOW_STATE_');
export const stepState = (s) => enumName(s, 'STEP_STATE_');

export function terminal(wf) {
  return ['succeeded', 'failed', 'cancelled'].includes(wfState(wf && wf.state));
}

function count(n, one, several) {
  return n === 1 ? '1 ' + one : `${n} ${several}`;
}

// wfKind names a workflow and its subject: "join node-2".
export function wfKind(wf) {
  const s = wf.spec || {};
  const dry = s.dryRun ? ' (dry-run)' : '';
  const n = (wf.nodes || []).length;
  if (s.init) return 'init ' + s.init.node + dry;
  if (s.join) return 'join ' + s.join.node + (s.join.controlPlane ? ' --control-plane' : '') + dry;
  if (s.reset) return 'reset ' + s.reset.node + dry;
  if (s.apply) return `apply (${count(n, 'node', 'nodes')})` + dry;
  if (s.upgrade) return `upgrade to ${s.upgrade.kubernetesVersion} (${count(n, 'node', 'nodes')})` + dry;
  if (s.certsRenew) return `certs renew (${count(n, 'control plane', 'control planes')})` + dry;
  if (s.etcdRestore) return `etcd restore from ${s.etcdRestore.snapshot} (${count(n, 'control plane', 'control planes')})` + dry;
  return 'unknown';
}

// laneOf is the node a step works for: its lane, else its node, else its name's prefix.
export function laneOf(step) {
  if (step.lane) return step.lane;
  if (step.node) return step.node;
  const i = (step.name || '').indexOf('/');
  return i > 0 ? step.name.slice(0, i) : 'workflow';
}

// shortName is a step's name without its node: "node-2/join" → "join".
export function shortName(step) {
  const i = (step.name || '').indexOf('/');
  return i >= 0 ? step.name.slice(i + 1) : step.name;
}

// taskKey is the prefix of every task ID of a step: WORKFLOW.STEP (the step's "/" as ".");
// the attempt follows it.
export function taskKey(wfID, stepName) {
  return wfID + '.' + String(stepName).replaceAll('/', '.');
}

// stepOfTask strips the attempt from a task ID.
export function stepKeyOfTask(taskID) {
  return String(taskID).replace(/\.\d+$/, '');
}
