// Package ingest turns validated add/remove events into store mutations through one
// bounded queue and one writer goroutine.
//
// The one-writer rule: only the Writer's goroutine calls Store.Apply. Producers (the
// MQTT hook, HTTP handlers) parse and validate at the edge (ParsePayload, DecodeJSON),
// then Enqueue or Submit; a producer never waits on another producer, only for room in
// the queue and, with Submit, for its own event to be applied.
//
// Batching: the writer takes what is queued, up to Options.BatchSize events, applies it
// in one Store.Apply call, and only then tells each event's Ack the outcome. So an
// acknowledgement always means applied.
//
// Backpressure: a producer waits up to Options.EnqueueTimeout for room; then the event
// is refused with ErrQueueFull and counted as rejected{reason="overload"}. Nothing is
// dropped after it was accepted. Bad input is refused before the queue with an *Error
// carrying a stable Code.
//
// Shutdown: Close stops accepting (later events get ErrClosed), lets the writer apply
// everything already queued, and returns when it has; call it after the producers have
// stopped. If its context ends first, it reports how many events were abandoned.
package ingest
