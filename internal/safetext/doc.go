// Package safetext checks values that Deckhand writes into files or argv on a host (URLs,
// paths, names), so that a value can never change the structure of what it is written into:
// no control characters (a newline would start a new line, section or document), no
// whitespace where a format separates fields by it, and no leading '-' where a program
// would read it as a flag. The controller applies these rules at the API edge and the agent
// again where it renders, so a bad value is refused before it is stored and never written.
package safetext
