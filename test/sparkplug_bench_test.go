package test

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/sparkplug"
	"github.com/arina-dev/arina/sparkplug/pb"
	"github.com/arina-dev/arina/store"
)

// BenchmarkSparkplug_EndToEnd compares, through the embedded broker, Sparkplug B DDATA
// (metrics by alias, after births) with JSON events carrying the same memberships:
// 8 paho publishers (MQTT 3.1.1, QoS 1, 100 in flight each) for 1000 devices on 10
// edge nodes, each message flipping its metrics, memory store. Every PUBACK means
// applied. Reported per event (one metric = one event): the process's CPU (broker,
// writer and the paho clients alike), and events/s.
func BenchmarkSparkplug_EndToEnd(b *testing.B) {
	b.Run("json", func(b *testing.B) { benchSparkplugE2E(b, 0) })
	b.Run("ddata/metrics=1", func(b *testing.B) { benchSparkplugE2E(b, 1) })
	b.Run("ddata/metrics=10", func(b *testing.B) { benchSparkplugE2E(b, 10) })
}

// benchSparkplugE2E runs b.N messages of perMsg metrics (0: JSON events, one each).
func benchSparkplugE2E(b *testing.B, perMsg int) {
	const devices, publishers = 1000, 8
	d := arinatest.Start(b, durable(b.TempDir(), store.DurabilityNone), func(o *daemon.Options) { o.MQTT.Sparkplug = &sparkplug.Options{} })
	clients := make([]pahomqtt.Client, publishers)
	for i := range clients {
		clients[i] = MustConnect311(b, d.MQTTAddr, fmt.Sprintf("sp-bench-%d", i))
	}
	topics := make([]string, devices)
	msgs := make([][2][]byte, devices) // per device: on, off
	for dev := range devices {
		if perMsg == 0 {
			topics[dev] = fmt.Sprintf("kitchen/edge-%d/m0", dev%10)
			msgs[dev] = [2][]byte{fmt.Appendf(nil, `{"user_id":"v%d","action":"add"}`, dev), fmt.Appendf(nil, `{"user_id":"v%d","action":"remove"}`, dev)}
			continue
		}
		topics[dev] = fmt.Sprintf("spBv1.0/plant/DDATA/edge-%d/v%d", dev%10, dev)
		var birth []*pb.Payload_Metric
		for k := range perMsg {
			birth = append(birth, spBool(fmt.Sprintf("m%d", k), uint64(k+1), false))
		}
		MustPublish(b, clients[0], fmt.Sprintf("spBv1.0/plant/DBIRTH/edge-%d/v%d", dev%10, dev), 1, string(spPayloadNoTS(b, birth...)))
		for parity, on := range []bool{true, false} {
			var ms []*pb.Payload_Metric
			for k := range perMsg {
				ms = append(ms, &pb.Payload_Metric{Alias: proto.Uint64(uint64(k + 1)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: on}})
			}
			msgs[dev][parity] = spPayloadNoTS(b, ms...)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, start := processCPU(), time.Now()
	per := b.N/publishers + 1
	var wg sync.WaitGroup
	for p, c := range clients {
		wg.Go(func() {
			// Publisher p owns the devices dev%publishers == p, so each device's
			// messages keep their order.
			own := devices / publishers
			window := make(chan pahomqtt.Token, 100)
			for i := range per {
				dev := p + publishers*(i%own)
				tok := c.Publish(topics[dev], 1, false, msgs[dev][(i/own)%2])
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
	b.StopTimer()
	events := float64(per * publishers * max(perMsg, 1))
	b.ReportMetric(float64(processCPU()-cpu0)/events, "cpu-ns/event")
	b.ReportMetric(events/time.Since(start).Seconds(), "events/s")
}

func spPayloadNoTS(tb testing.TB, ms ...*pb.Payload_Metric) []byte {
	tb.Helper()
	b, err := proto.Marshal(&pb.Payload{Metrics: ms})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func processCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
