// Package broker is Arina's MQTT side: the embedded mochi-mqtt broker, its listeners,
// and the publish hook that turns messages on ingest topics into ingest events.
//
// A PUBLISH to exactly <topic_prefix>/<content_id>/<reaction_type> is an event; every
// other topic is relayed as by any broker, and accepted events are relayed too. The hook
// runs on the publishing client's read goroutine and its answer decides the ack:
//
//   - QoS 1/2: the hook enqueues the event and holds the packet back (mochi sends no
//     ack for it); once the writer has applied (and, with a durable store, committed)
//     the event, the client's acker goroutine re-injects the packet and mochi acks,
//     retains and relays it as usual. The client's read goroutine never waits for a
//     commit, so one connection with many publishes in flight shares commits, and
//     acks keep the order of the publishes. See acker.go for why this is race-free.
//   - Malformed event: never applied and never relayed. MQTT 5 QoS>0 gets reason 0x99;
//     3.1.1 and QoS 0 get a normal ack (a resend could never help) and the rejection is
//     counted by reason and logged at debug level with the client id.
//   - Overload or shutdown: MQTT 5 QoS>0 gets 0x97 (0x80 for a store failure); a 3.1.1
//     QoS>0 publish gets no ack and its connection is closed, so the client
//     reconnects and resends it (3.1.1 clients resend only on reconnect); QoS 0 is
//     dropped and counted.
//   - Sparkplug B (Options.Sparkplug): a publish on spBv1.0/... is decoded by package
//     sparkplug into any number of events, applied and acknowledged as a batch's
//     (sparkplug.go); an edge node's NDEATH will is ingested from OnWillSent.
//   - Wills on ingest topics are ingested too (mochi publishes them without calling
//     OnPublish), except when the broker itself is shutting down.
package broker
