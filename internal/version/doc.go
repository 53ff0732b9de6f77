// Package version tells which build of Deckhand is running (module version or "(devel)",
// the VCS revision it was built from and whether the work tree was modified, the Go
// version), renders it as the one string every binary prints and sends, parses that string
// back, and decides whether a set of builds is a combination Deckhand supports (Skew).
package version
