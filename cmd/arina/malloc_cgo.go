//go:build cgo && linux

package main

/*
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// arenas is what the constructor did: 1 set to one arena, 2 left to MALLOC_ARENA_MAX in
// the environment, 0 unsupported (a C library without M_ARENA_MAX, such as musl).
static int arenas;

// It must run before any thread's first malloc: glibc fixes the number of arenas when
// the second one is made, and the Go runtime starts threads before Go code runs.
__attribute__((constructor)) static void limitArenas(void) {
	if (getenv("MALLOC_ARENA_MAX") != NULL) {
		arenas = 2;
		return;
	}
#ifdef M_ARENA_MAX
	arenas = mallopt(M_ARENA_MAX, 1) == 1;
#endif
}

static int mallocArenas(void) { return arenas; }

// For TestMallocArenas: a malloc on the calling thread, and the number of arenas
// (malloc_info's heaps; -1 where it cannot tell).
static void mallocOnThread(void) { free(malloc(4096)); }

static int mallocHeaps(void) {
#ifdef __GLIBC__
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL) return -1;
	int ok = malloc_info(0, f) == 0;
	fclose(f);
	int n = 0;
	for (char *p = buf; ok && (p = strstr(p, "<heap nr=")) != NULL; p++) n++;
	free(buf);
	return ok ? n : -1;
#else
	return -1;
#endif
}
*/
import "C"

import (
	"runtime"
	"sync"
)

// mallocArenas is what the C constructor above did, for the log and TestMallocArenas:
// "set" (one arena), "env" (MALLOC_ARENA_MAX in the environment, which glibc reads
// itself, left alone) or "unsupported".
//
// In a cgo build Pebble's memtables and block cache come from C's malloc (outside the
// Go heap), from whichever thread the goroutine runs on, and glibc gives threads arenas
// of their own, up to 8 per core: after 4M events each of 8 arenas held 0.5-1 MiB, 7
// MiB of RSS in all. With one arena that is gone (docs/PERFORMANCE.md). The
// allocations are few and large, so the one arena's lock is not contended.
var mallocArenas = [...]string{"unsupported", "set", "env"}[C.mallocArenas()]

// mallocHeapsAfterThreads makes n OS threads malloc at once and returns how many
// arenas glibc then has (-1: it cannot tell). TestMallocArenas only.
func mallocHeapsAfterThreads(n int) int {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			runtime.LockOSThread() // a thread of its own, ended with the goroutine
			<-start
			C.mallocOnThread()
		})
	}
	close(start)
	wg.Wait()
	return int(C.mallocHeaps())
}
