// Package kubeconfigs issues Kubernetes user certificates for the recorded cluster (deckctl
// kubeconfig): it picks a Ready control plane that no workflow holds, runs a
// kubeconfig_sign task there with the caller's certificate request, waits for it, and
// returns the certificate, the cluster CA certificate and the API server to reach. The
// cluster's CA key and admin.conf stay on the control plane and the user's private key
// stays with the user: nothing secret passes through the controllers or their store.
package kubeconfigs
