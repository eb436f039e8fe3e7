package ingest_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// benchEvents returns adds of n users spread over 100 contents and 5 reactions,
// followed by the removes of the same memberships, so that cycling through them keeps
// the store's size bounded and every event changes a set. The ids are built here,
// before any timed loop.
func benchEvents(n int) []ingest.Event {
	reactions := []string{"fire", "like", "heart", "laugh", "wow"}
	evs := make([]ingest.Event, 0, 2*n)
	for _, a := range []store.Action{store.Add, store.Remove} {
		for i := range n {
			evs = append(evs, ingest.Event{Op: store.Op{
				ContentID:    fmt.Sprintf("content-%d", i%100),
				ReactionType: reactions[i%len(reactions)],
				UserID:       fmt.Sprintf("user-%d", i),
				Action:       a,
			}})
		}
	}
	return evs
}

// MustStartBenchWriter starts a writer on a memory store, without metrics registry, and
// closes it at cleanup.
func MustStartBenchWriter(b *testing.B, opts ingest.Options) *ingest.Writer {
	b.Helper()
	w, err := ingest.NewWriter(store.NewMemory(), opts, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatalf("NewWriter: %v", err)
	}
	w.Start()
	b.Cleanup(func() {
		if err := w.Close(context.Background()); err != nil {
			b.Errorf("closing the writer: %v", err)
		}
	})
	return w
}

// BenchmarkWriter_Submit measures one producer: each op is one event from Submit to
// applied, so every batch holds one event.
func BenchmarkWriter_Submit(b *testing.B) {
	evs := benchEvents(1 << 16)
	w := MustStartBenchWriter(b, ingest.Options{})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := w.Submit(ctx, evs[i%len(evs)]); err != nil {
			b.Fatalf("Submit: %v", err)
		}
		i++
	}
}

// BenchmarkWriter_SubmitParallel measures many producers waiting for their own events
// at once, which is what lets the writer fill batches.
func BenchmarkWriter_SubmitParallel(b *testing.B) {
	evs := benchEvents(1 << 16)
	w := MustStartBenchWriter(b, ingest.Options{})
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // producers are mostly waiting: 8 per GOMAXPROCS
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each producer walks its own stretch of the events.
		i := int(next.Add(1)) * 7919
		for pb.Next() {
			if _, err := w.Submit(ctx, evs[i%len(evs)]); err != nil {
				b.Errorf("Submit: %v", err)
				return
			}
			i++
		}
	})
}

// BenchmarkWriter_Enqueue measures the asynchronous path with no Ack (MQTT QoS 0): the
// timed region ends with Close, so it includes applying every enqueued event.
func BenchmarkWriter_Enqueue(b *testing.B) {
	evs := benchEvents(1 << 16)
	w := MustStartBenchWriter(b, ingest.Options{EnqueueTimeout: time.Minute})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := w.Enqueue(ctx, evs[i%len(evs)], nil); err != nil {
			b.Fatalf("Enqueue: %v", err)
		}
		i++
	}
	b.StartTimer() // b.Loop stopped it: the drain belongs in the measurement
	if err := w.Close(context.Background()); err != nil {
		b.Fatalf("Close: %v", err)
	}
	b.StopTimer()
}

func BenchmarkParsePayload(b *testing.B) {
	for _, bc := range []struct {
		name    string
		payload string
	}{
		{"Text", "add Sam"},
		{"JSONShort", `{"user_id":"Sam","action":"add"}`},
		{"JSONShortTS", `{"user_id":"Sam","action":"add","ts":1700000000123,"event_id":"e-00001"}`},
		{"JSONSeed", `{"type":"reaction","action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			payload := []byte(bc.payload)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ingest.ParsePayload("Stew", "fire", payload, ingest.SourceMQTT); err != nil {
					b.Fatalf("ParsePayload(%q): %v", payload, err)
				}
			}
		})
	}
}
