package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
)

// idleClientsConnected reads the daemon's arina_mqtt_clients_connected gauge.
func idleClientsConnected(d *arinatest.Daemon) (int, error) {
	mfs, err := d.Registry.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == "arina_mqtt_clients_connected" && len(mf.GetMetric()) > 0 {
			return int(mf.GetMetric()[0].GetGauge().GetValue()), nil
		}
	}
	return 0, errors.New("arina_mqtt_clients_connected is not registered")
}

// waitClientsConnected polls the gauge until it is want.
func waitClientsConnected(t *testing.T, d *arinatest.Daemon, want int) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() error {
		got, err := idleClientsConnected(d)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("arina_mqtt_clients_connected = %d, want %d", got, want)
		}
		return nil
	})
}

// TestHoldIdle_Arina opens 200 idle connections to an embedded Arina with each
// protocol, checks the broker counts them all, and that all are gone once HoldIdle
// returns after its context ends.
func TestHoldIdle_Arina(t *testing.T) {
	const n = 200
	for _, proto := range []Protocol{MQTT311, MQTT5} {
		t.Run("MQTT"+proto.String(), func(t *testing.T) {
			d := arinatest.Start(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var progressCalls, openedCalls atomic.Int64
			var atOpen atomic.Pointer[IdleProgress]
			type result struct {
				rep *IdleReport
				err error
			}
			res := make(chan result, 1)
			go func() {
				rep, err := HoldIdle(ctx, IdleOptions{
					Broker: d.MQTTAddr, Protocol: proto, Connections: n, Dialers: 16,
					ProgressInterval: time.Millisecond,
					Progress:         func(IdleProgress) { progressCalls.Add(1) },
					Opened:           func(p IdleProgress) { openedCalls.Add(1); atOpen.Store(&p) },
				})
				res <- result{rep, err}
			}()
			waitClientsConnected(t, d, n)
			testutil.WaitFor(t, 10*time.Second, func() error {
				if openedCalls.Load() == 0 {
					return errors.New("Opened not called")
				}
				return nil
			})
			if p := atOpen.Load(); p.Opened != n || p.Failed != 0 || p.Connections != n {
				t.Errorf("Opened called with %+v, want %d opened, none failed", *p, n)
			}
			cancel()
			r := <-res
			if r.err != nil {
				t.Fatalf("HoldIdle: %v", r.err)
			}
			rep := r.rep
			if rep.Opened != n || rep.Failed != 0 || rep.Connections != n || rep.FirstError != "" || rep.Lost != 0 {
				t.Errorf("report %+v, want %d opened and no failures", *rep, n)
			}
			if !rep.Interrupted || rep.OpenSeconds <= 0 || rep.OpenRate <= 0 || rep.Protocol != proto.String() ||
				rep.Broker != d.MQTTAddr || rep.KeepAliveSeconds != 0 {
				t.Errorf("report %+v, want interrupted, with open time and rate, protocol %v, broker %s", *rep, proto, d.MQTTAddr)
			}
			if openedCalls.Load() != 1 {
				t.Errorf("Opened called %d times, want once", openedCalls.Load())
			}
			waitClientsConnected(t, d, 0)
		})
	}
}

// TestHoldIdle_KeepAlive holds connections with a 1s keepalive for 2s: without the
// PINGREQs the broker would close them after 1s (mochi waits 1.5 keepalives, in whole
// seconds), and HoldIdle would count them lost.
func TestHoldIdle_KeepAlive(t *testing.T) {
	for _, proto := range []Protocol{MQTT311, MQTT5} {
		t.Run("MQTT"+proto.String(), func(t *testing.T) {
			t.Parallel()
			d := arinatest.Start(t)
			rep, err := HoldIdle(context.Background(), IdleOptions{
				Broker: d.MQTTAddr, Protocol: proto, Connections: 10, KeepAlive: time.Second, Hold: 2 * time.Second,
			})
			if err != nil {
				t.Fatalf("HoldIdle: %v", err)
			}
			if rep.Opened != 10 || rep.Lost != 0 || rep.Interrupted || rep.KeepAliveSeconds != 1 || rep.HeldSeconds < 2 {
				t.Errorf("report %+v, want 10 opened, none lost, held 2s", *rep)
			}
			waitClientsConnected(t, d, 0)
		})
	}
}

// TestHoldIdle_Refused counts connections the broker refuses as failures and holds
// the others.
func TestHoldIdle_Refused(t *testing.T) {
	d := arinatest.Start(t, func(o *daemon.Options) { o.MQTT.Limits = broker.Limits{MaxConnections: 5} })
	for _, proto := range []Protocol{MQTT311, MQTT5} {
		rep, err := HoldIdle(context.Background(), IdleOptions{
			Broker: d.MQTTAddr, Protocol: proto, Connections: 8, Dialers: 1, Hold: time.Millisecond,
		})
		if err != nil {
			t.Fatalf("MQTT %v: HoldIdle: %v", proto, err)
		}
		if rep.Opened != 5 || rep.Failed != 3 || !strings.Contains(rep.FirstError, "refused") {
			t.Errorf("MQTT %v: report %+v, want 5 opened and 3 refused", proto, *rep)
		}
		waitClientsConnected(t, d, 0)
	}
}

func TestHoldIdle_BrokerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rep, err := HoldIdle(context.Background(), IdleOptions{Broker: addr, Connections: 1000, Dialers: 4})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("HoldIdle = %v, want an error naming the broker", err)
	}
	if rep.Opened != 0 || rep.Failed < 4 || rep.Failed > 100 {
		t.Errorf("report %+v, want nothing opened and an early give-up", *rep)
	}
}

func TestHoldIdle_InvalidOptions(t *testing.T) {
	_, err := HoldIdle(context.Background(), IdleOptions{
		Protocol: 3, Connections: -1, KeepAlive: 1500 * time.Millisecond, Hold: -1, Dialers: -1,
	})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("HoldIdle = %v, want ErrInvalidOptions", err)
	}
	for _, field := range []string{"protocol", "connections", "keepalive", "hold", "dialers"} {
		if !strings.Contains(err.Error(), field+" ") {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

// TestHoldIdle_Mosquitto holds connections to a real mosquitto, which answers an MQTT 5
// keepalive of 0 with a Server Keep Alive of 65535: HoldIdle must honour it.
func TestHoldIdle_Mosquitto(t *testing.T) {
	m := testutil.StartMosquitto(t)
	for _, tt := range []struct {
		proto            Protocol
		serverKeepAlives int
	}{{MQTT311, 0}, {MQTT5, 20}} {
		rep, err := HoldIdle(context.Background(), IdleOptions{
			Broker: m.Addr, Protocol: tt.proto, Connections: 20, Hold: 50 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("MQTT %v: HoldIdle: %v", tt.proto, err)
		}
		if rep.Opened != 20 || rep.Failed != 0 || rep.Lost != 0 || rep.ServerKeepAlives != tt.serverKeepAlives {
			t.Errorf("MQTT %v: report %+v, want 20 opened, none lost, %d server keepalives", tt.proto, *rep, tt.serverKeepAlives)
		}
	}
}
