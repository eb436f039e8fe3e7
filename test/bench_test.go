package test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
)

// BenchmarkIngest_EndToEnd publishes events from several paho publishers to a real
// embedded broker and measures until every event is applied (QoS 0: until the applied
// counter reaches the total; QoS 1: until every PUBACK arrived, which means applied).
func BenchmarkIngest_EndToEnd(b *testing.B) {
	for _, mode := range []string{store.DurabilityNone, store.DurabilitySync} {
		for _, qos := range []byte{0, 1} {
			b.Run(fmt.Sprintf("store=%s/qos=%d/publishers=8", mode, qos), func(b *testing.B) {
				benchIngest(b, mode, qos, 8)
			})
		}
	}
}

func benchIngest(b *testing.B, mode string, qos byte, publishers int) {
	d := arinatest.Start(b, durable(b.TempDir(), mode))
	clients := make([]pahomqtt.Client, publishers)
	for i := range clients {
		clients[i] = MustConnect311(b, d.MQTTAddr, fmt.Sprintf("bench-%d", i))
	}
	// Topics and payloads are built before timing: 100 contents x 5 reactions, 10k users.
	const contents, reactions, users = 100, 5, 10000
	topics := make([]string, contents*reactions)
	for i := range topics {
		topics[i] = fmt.Sprintf("kitchen/c%d/r%d", i/reactions, i%reactions)
	}
	payloads := make([][]byte, users)
	for i := range payloads {
		payloads[i] = fmt.Appendf(nil, "add u%d", i)
	}
	applied0 := metric(b, d.HTTPURL, `arina_events_applied_total{source="mqtt"}`)
	b.SetBytes(int64(len(payloads[0])))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	per := b.N/publishers + 1
	var wg sync.WaitGroup
	for p, c := range clients {
		wg.Go(func() {
			window := make(chan pahomqtt.Token, 100) // 100 in flight per publisher
			for i := range per {
				n := p*per + i
				tok := c.Publish(topics[n%len(topics)], qos, false, payloads[n%users])
				if qos == 0 {
					continue
				}
				select {
				case window <- tok:
				default:
					(<-window).Wait()
					window <- tok
				}
			}
			close(window)
			for tok := range window {
				tok.Wait()
			}
		})
	}
	wg.Wait()
	total := float64(per * publishers)
	if qos == 0 {
		testutil.WaitFor(b, time.Minute, func() error {
			if got := metric(b, d.HTTPURL, `arina_events_applied_total{source="mqtt"}`) - applied0; got < total {
				return fmt.Errorf("applied %v of %v", got, total)
			}
			return nil
		})
	}
	b.StopTimer()
	b.ReportMetric(total/time.Since(start).Seconds(), "events/s")
}
