// Package bounded cuts text that comes from outside (a request field, an agent's log line,
// an error that quotes either) to a bounded length before it is stored or logged, and says
// what was cut: "abc… (3145728 bytes)".
package bounded
