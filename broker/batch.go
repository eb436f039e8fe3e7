package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// BatchTopicSuffix names the batch topic under the topic prefix: a gateway publishes
// many events in one message to <prefix>/batch, as a JSON array or NDJSON of
// seed-shaped events (each with content_id and reaction_type).
const BatchTopicSuffix = "batch"

// DefaultMaxBatchPayload is the default limit on a batch topic payload, in bytes.
const DefaultMaxBatchPayload = 256 << 10

// batchAck completes a held-back batch publish once the writer has answered for
// every event of the batch that was offered.
type batchAck struct {
	p         *pending
	remaining atomic.Int64 // answers due, plus one while items are being offered
	mu        sync.Mutex
	err       error // the first failure: an event refused by the queue or not applied
}

// Done is called by the writer goroutine for each offered event.
func (b *batchAck) Done(_ store.Result, err error) {
	if err != nil {
		b.fail(err)
	}
	b.release()
}

func (b *batchAck) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

func (b *batchAck) release() {
	if b.remaining.Add(-1) == 0 {
		b.mu.Lock()
		err := b.err
		b.mu.Unlock()
		b.p.Done(store.Result{}, err)
	}
}

// onBatch ingests a publish on the batch topic. Invalid items are dropped and counted
// (as a malformed single event from a 3.1.1 client is): they never apply, and the valid
// items of the same batch still do. Valid items are offered to the writer in order; if
// one is refused (overload), the rest are not offered and the publish is not
// acknowledged (3.1.1: no PUBACK, the client resends; MQTT 5: 0x97), so a resend
// applies the batch again from the start, which adds and removes make harmless. The
// PUBACK is sent once every offered item is applied (and committed).
func (h *ingestHook) onBatch(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	qos := pk.FixedHeader.Qos
	v5 := cl.Properties.ProtocolVersion == 5
	badBatch := func(err error) (packets.Packet, error) {
		h.sink.Reject(ingest.SourceMQTT, ingest.CodeOf(err))
		h.log.Warn("mqtt batch rejected", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
		if v5 && qos > 0 {
			return pk, h.nack(cl, pk, packets.Code{Code: packets.ErrPayloadFormatInvalid.Code, Reason: truncateReason(err.Error())})
		}
		return pk, packets.CodeSuccessIgnore
	}
	if len(pk.Payload) > h.maxBatchPayload {
		return badBatch(&ingest.Error{Code: ingest.CodePayloadTooLarge, Msg: fmt.Sprintf("batch payload of %d bytes is over the %d byte limit", len(pk.Payload), h.maxBatchPayload)})
	}
	body := bytes.TrimSpace(pk.Payload)
	raw, err := ingest.SplitBatch(body, len(body) == 0 || body[0] != '[')
	if err != nil {
		return badBatch(err)
	}
	events := make([]ingest.Event, 0, len(raw))
	var firstBad error
	bad := 0
	for i, b := range raw {
		ev, err := ingest.DecodeBatchItem(b, ingest.SourceMQTT)
		if err == nil && h.allowItem != nil {
			// An item goes where a single event on <prefix>/<content>/<reaction> would:
			// the same ACL applies, or a client allowed the batch topic could write
			// every content.
			if topic := h.prefix + "/" + ev.ContentID + "/" + ev.ReactionType; !h.allowItem(cl, topic) {
				err = &ingest.Error{Code: ingest.CodeNotAuthorized, Msg: "not authorized to publish to " + topic}
			}
		}
		if err != nil {
			h.sink.Reject(ingest.SourceMQTT, ingest.CodeOf(err))
			if firstBad == nil {
				firstBad = fmt.Errorf("item %d: %w", i, err)
			}
			bad++
			continue
		}
		events = append(events, ev)
	}
	if bad > 0 {
		h.log.Warn("mqtt batch items rejected", "client_id", cl.ID, "rejected", bad, "items", len(raw), "first", firstBad)
	}
	if len(events) == 0 {
		if firstBad == nil {
			firstBad = &ingest.Error{Code: ingest.CodeMissingField, Msg: "batch has no items"}
		}
		if v5 && qos > 0 {
			return pk, h.nack(cl, pk, packets.Code{Code: packets.ErrPayloadFormatInvalid.Code, Reason: truncateReason(firstBad.Error())})
		}
		return pk, packets.CodeSuccessIgnore
	}
	return h.enqueueAll(cl, pk, events)
}

// enqueueAll offers the events of one publish (a batch, a Sparkplug B message) to the
// writer in order, and holds a QoS 1/2 publish back until every offered event is
// applied (one PUBACK for them all). If one is refused (overload), the rest are not
// offered and the publish is not acknowledged: 3.1.1 gets no PUBACK (the client
// resends), MQTT 5 gets 0x97. QoS 0 events are offered until one is refused.
func (h *ingestHook) enqueueAll(cl *mqtt.Client, pk packets.Packet, events []ingest.Event) (packets.Packet, error) {
	qos := pk.FixedHeader.Qos
	v5 := cl.Properties.ProtocolVersion == 5
	ctx := context.Background()
	if qos == 0 {
		for _, ev := range events {
			if err := h.sink.Enqueue(ctx, ev, nil); err != nil {
				h.log.Debug("mqtt qos0 events cut short", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
				break
			}
		}
		return pk, nil
	}
	a := h.ackerFor(cl)
	ba := &batchAck{p: a.newPending(&pk)}
	ba.remaining.Store(1)
	for i, ev := range events {
		ba.remaining.Add(1)
		if err := h.sink.Enqueue(ctx, ev, ba); err != nil {
			ba.remaining.Add(-1)
			ba.fail(err)
			if i == 0 { // nothing offered: answer now, as for a single event
				a.release(ba.p)
				if !v5 {
					return pk, h.refuse311(cl, err)
				}
				return pk, h.nack(cl, pk, packets.ErrQuotaExceeded)
			}
			break
		}
	}
	ba.release()
	return pk, errHeldBack
}

// truncateReason keeps a reason string short enough for an ack packet.
func truncateReason(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// failCode is the MQTT 5 reason code of a held-back publish whose events failed.
func failCode(err error) packets.Code {
	if errors.Is(err, ingest.ErrQueueFull) || errors.Is(err, ingest.ErrClosed) {
		return packets.ErrQuotaExceeded
	}
	return packets.ErrUnspecifiedError
}
