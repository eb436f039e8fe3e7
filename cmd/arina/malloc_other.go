//go:build !cgo || !linux

package main

// mallocArenas: without cgo nothing is allocated with C's malloc (Pebble uses the Go
// heap), so there is nothing to limit (see malloc_cgo.go).
var mallocArenas = "no cgo"
