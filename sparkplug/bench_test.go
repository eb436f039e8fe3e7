package sparkplug_test

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/sparkplug"
	"github.com/arina-dev/arina/sparkplug/pb"
	"github.com/arina-dev/arina/store"
)

// Decode + apply cost per metric against a JSON event's: the same memberships (1000
// devices on 10 edge nodes, each message flipping every metric it carries, so every
// event changes a set), decoded from Sparkplug B DDATA (metrics by alias, as after a
// birth) or from JSON payloads on kitchen/<edge>/<metric>, then enqueued to a real
// writer on a memory store. Neither carries a timestamp, so the cycle of messages can
// repeat. Reported per metric (= per event): wall ns and process CPU ns (the writer's
// goroutine included).

const benchDevices = 1000

func benchName(i int) string { return fmt.Sprintf("m%d", i) }

func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// benchApply runs produce (one message, events enqueued) b.N times, then waits until
// the writer applied everything, and reports the cost per event.
func benchApply(b *testing.B, perMsg int, produce func(i int, w *ingest.Writer)) {
	w, err := ingest.NewWriter(store.NewMemory(), ingest.Options{}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	w.Start()
	defer w.Close(context.Background())
	for i := range 2 * benchDevices { // warm the store: every membership exists once
		produce(i, w)
	}
	sync := func() {
		if _, err := w.Submit(context.Background(), ingest.Event{Op: store.Op{ContentID: "sync", ReactionType: "sync", UserID: "sync", Action: store.Add}}); err != nil {
			b.Fatal(err)
		}
	}
	sync()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuNanos(), time.Now()
	i := 0
	for b.Loop() {
		produce(i, w)
		i++
	}
	sync()
	events := float64(b.N * perMsg)
	b.ReportMetric(float64(time.Since(t0).Nanoseconds())/events, "ns/metric")
	b.ReportMetric(float64(cpuNanos()-cpu0)/events, "cpu-ns/metric")
}

func enqueue(b *testing.B, w *ingest.Writer, evs []ingest.Event) {
	for _, ev := range evs {
		if err := w.Enqueue(context.Background(), ev, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecoder_DDATA(b *testing.B) {
	for _, perMsg := range []int{1, 10} {
		b.Run(fmt.Sprintf("metrics=%d", perMsg), func(b *testing.B) {
			d := mustNew(b, sparkplug.Options{}, nil)
			topics := make([]string, benchDevices)
			var birth []*pb.Payload_Metric
			for k := range perMsg {
				birth = append(birth, boolM(benchName(k), uint64(k+1), false))
			}
			for dev := range benchDevices {
				topics[dev] = fmt.Sprintf("spBv1.0/plant/DDATA/edge-%d/v%d", dev%10, dev)
				if _, err := d.Decode(fmt.Sprintf("spBv1.0/plant/DBIRTH/edge-%d/v%d", dev%10, dev), payload(b, -1, 0, birth...), ingest.SourceMQTT); err != nil {
					b.Fatal(err)
				}
			}
			// Two rounds: every metric of every device true, then false.
			msgs := make([][]byte, 2*benchDevices)
			for j := range msgs {
				var ms []*pb.Payload_Metric
				for k := range perMsg {
					ms = append(ms, &pb.Payload_Metric{Alias: proto.Uint64(uint64(k + 1)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: j < benchDevices}})
				}
				msgs[j] = payload(b, -1, 0, ms...)
			}
			benchApply(b, perMsg, func(i int, w *ingest.Writer) {
				j := i % len(msgs)
				res, err := d.Decode(topics[j%benchDevices], msgs[j], ingest.SourceMQTT)
				if err != nil || len(res.Events) != perMsg {
					b.Fatalf("decode: %d events, %v", len(res.Events), err)
				}
				enqueue(b, w, res.Events)
			})
		})
	}
}

func BenchmarkJSON_Event(b *testing.B) {
	type msg struct {
		content, reaction string
		payload           []byte
	}
	// The same events, one JSON payload each: device j's metric k.
	msgs := make([]msg, 0, 2*benchDevices)
	for j := range 2 * benchDevices {
		action := "remove"
		if j < benchDevices {
			action = "add"
		}
		dev := j % benchDevices
		msgs = append(msgs, msg{fmt.Sprintf("edge-%d", dev%10), benchName(0), fmt.Appendf(nil, `{"user_id":"v%d","action":%q}`, dev, action)})
	}
	benchApply(b, 1, func(i int, w *ingest.Writer) {
		m := msgs[i%len(msgs)]
		ev, err := ingest.ParsePayload(m.content, m.reaction, m.payload, ingest.SourceMQTT)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Enqueue(context.Background(), ev, nil); err != nil {
			b.Fatal(err)
		}
	})
}
