//go:build cgo && linux

package main

import (
	"os"
	"testing"
)

// TestMallocArenas: in a cgo build the C allocator has one arena, however many
// threads malloc at once, unless MALLOC_ARENA_MAX is in the environment (glibc's own
// setting wins).
func TestMallocArenas(t *testing.T) {
	switch _, env := os.LookupEnv("MALLOC_ARENA_MAX"); {
	case env:
		if mallocArenas != "env" {
			t.Fatalf("MALLOC_ARENA_MAX is set, and mallocArenas = %q, want env", mallocArenas)
		}
		return
	case mallocArenas == "unsupported":
		t.Skip("the C library has no M_ARENA_MAX (not glibc)")
	case mallocArenas != "set":
		t.Fatalf("mallocArenas = %q, want set", mallocArenas)
	}
	switch n := mallocHeapsAfterThreads(16); {
	case n < 0:
		t.Skip("malloc_info cannot count the arenas (not glibc)")
	case n != 1:
		t.Fatalf("%d malloc arenas after 16 threads malloc at once, want 1", n)
	}
}
