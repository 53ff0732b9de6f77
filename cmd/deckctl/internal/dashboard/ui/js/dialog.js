// The confirmation dialog: every action that changes something asks here first.

import { replace } from './dom.js';

const $ = (id) => document.getElementById(id);

let current = null;

// confirmDialog opens the dialog. opts: title, body (nodes), ok (the button's text),
// danger (a red button), ready (false keeps the button disabled until setReady), and
// onOK (async; its error is shown in the dialog, which stays open). It returns a handle:
// setBody(...nodes), setReady(bool), setOK(text), showError(err), close().
export function confirmDialog(opts) {
  if (current) current.close();
  const dlg = $('dialog');
  const okBtn = $('dialog-ok');
  const cancelBtn = $('dialog-cancel');
  const errEl = $('dialog-error');
  const opener = document.activeElement;
  let busy = false;
  let ready = opts.ready !== false;

  $('dialog-title').textContent = opts.title;
  replace($('dialog-body'), ...(opts.body || []));
  errEl.hidden = true;
  okBtn.textContent = opts.ok || 'OK';
  okBtn.className = opts.danger ? 'danger' : 'primary';
  const sync = () => { okBtn.disabled = busy || !ready; cancelBtn.disabled = busy; };
  sync();

  const handle = {
    setBody(...nodes) { replace($('dialog-body'), ...nodes); },
    setReady(r) { ready = r; sync(); },
    setOK(text) { okBtn.textContent = text; },
    showError(e) {
      if (!e) { errEl.hidden = true; return; }
      replace(errEl, e.message || String(e), e.reason ? Object.assign(document.createElement('span'), { className: 'reason', textContent: e.reason }) : '');
      errEl.hidden = false;
    },
    close() {
      okBtn.onclick = cancelBtn.onclick = dlg.oncancel = null;
      if (dlg.open) dlg.close();
      current = null;
      if (opener && opener.focus && document.contains(opener)) opener.focus();
    },
  };
  okBtn.onclick = async () => {
    if (busy || !ready) return;
    busy = true;
    sync();
    handle.showError(null);
    try {
      await opts.onOK();
      handle.close();
    } catch (e) {
      handle.showError(e);
    } finally {
      busy = false;
      sync();
    }
  };
  cancelBtn.onclick = () => { if (!busy) handle.close(); };
  dlg.oncancel = (ev) => { ev.preventDefault(); if (!busy) handle.close(); };
  current = handle;
  dlg.showModal();
  return handle;
}

export function closeDialog() {
  if (current) current.close();
}
