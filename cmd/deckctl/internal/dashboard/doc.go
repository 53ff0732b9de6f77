// Package dashboard serves deckctl dashboard: a web UI on a loopback address that reaches
// the controllers' REST API with the user's credential file, as kubectl proxy does, so
// nothing new listens on the network. It owns the embedded UI (plain HTML, CSS and
// JavaScript modules, nothing loaded from elsewhere), the proxy to the controllers (mTLS
// with the credential's certificate, the listed controllers tried in order, streams
// flushed as they come) and the guard in front of both: a per-run token that the page
// keeps in its sessionStorage and sends in a header with every API call (never a cookie:
// a browser sends those to every port of the host), the Host header checked against DNS
// rebinding and the Origin, when sent, checked against other pages. The guard's decisions
// (allow, which controller next) are pure functions (policy.go, upstream.go).
package dashboard
