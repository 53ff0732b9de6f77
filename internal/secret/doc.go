// Package secret keeps the secrets an agent handles (bootstrap tokens, certificate keys,
// private keys, kubeconfig credentials) out of everything a viewer can read: task log
// lines, error messages and hints, non-secret outputs and file-change records. The agent
// masks what it reports; a controller masks again, by pattern, what it receives
// (controller/sessions), so an agent of an older version cannot show a viewer a secret.
//
// It masks by value (a Masker is told the secrets a task carries or produced) and by
// pattern, so a secret the agent was never told about (a token kubeadm minted and printed)
// is masked too:
//   - bootstrap tokens, [a-z0-9]{6}.[a-z0-9]{16}: the secret half is masked, the public
//     token ID stays so a person can still tell tokens apart;
//   - certificate keys, 64 hex digits after "certificate key", "--certificate-key",
//     "certificateKey" or "certificate_key", or alone on a line (kubeadm prints
//     "[upload-certs] Using certificate key:" and the key on the next line);
//   - PEM private key blocks;
//   - the value of a YAML or flag-style line whose key names a credential (token,
//     certificateKey, client-key-data, password, ...), as in a join config or kubeconfig.
//
// The CA cert hash (sha256:<hex>) is not a secret and is left alone.
package secret
