// Package ratelimit holds the token buckets that bound what one caller can make the
// controller do: a Bucket for one caller, and Keyed, a bounded set of buckets by key (a
// source address, a node, a log message).
package ratelimit
