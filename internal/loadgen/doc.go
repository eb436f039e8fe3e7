// Package loadgen is the engine of `arina bench`: a load generator that drives any MQTT
// broker with add/remove events and reports publish and acknowledgement rates and
// latency percentiles.
//
// Run opens Options.Publishers connections (MQTT 5 with github.com/eclipse/paho.golang,
// or 3.1.1 with github.com/eclipse/paho.mqtt.golang). Each connection has
// Options.InFlight worker goroutines, each with exactly one publish outstanding, so the
// in-flight window per connection is exact. For MQTT 5 at QoS 1 it is capped at the
// broker's Receive Maximum (mosquitto announces 20), which the report shows: more
// workers would only wait in the client for a send quota, and that wait would be
// counted as ack latency. A worker draws the next event from
// its own seeded generator into reused buffers (topics are precomputed up to 2^18
// content×reaction pairs), publishes it and waits for the PUBACK (QoS 1) or for the
// write (QoS 0); the time in between is the ack latency.
//
// Visibility latency (Options.HTTPURL, Arina only): every SampleEvery-th event of the
// first publisher, while no probe is outstanding, is replaced by an add on a fresh
// content "probe-<run>-<n>"; a poller GETs /api/v1/contents/{id} every PollInterval from
// just before the publish until the content shows a count. One probe at a time keeps
// the poller from loading the API it measures.
//
// Warm-up: events published during Options.Warmup, and their acks even when they
// arrive later, are counted apart and left out of the report.
//
// Goroutines: Run owns them all (workers, the poller, one that closes a channel when
// the workers are done) and returns only after they have ended and every connection is
// closed. Counters are atomics; latency histograms are lock-free (see histogram.go).
package loadgen
