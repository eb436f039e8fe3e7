package main

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRun_PubChecksIDsFirst checks that pub refuses ids the daemon would refuse, at
// once, with the flag and the value, before any connection: 'St/ew' would publish to a
// topic that is not an ingest topic and be acknowledged without being applied, 'fi#re'
// to a topic name the broker answers by closing the connection (a 10 s wait).
func TestRun_PubChecksIDsFirst(t *testing.T) {
	t.Parallel()
	addr, accepted := countingListener(t)

	long := strings.Repeat("r", 65)
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"ContentSlash", []string{"--content", "St/ew"}, `--content "St/ew": contains '/'`},
		{"ReactionHash", []string{"--reaction", "fi#re"}, `--reaction "fi#re": contains '#'`},
		{"ReactionPlus", []string{"--reaction", "a+"}, `--reaction "a+": contains '+'`},
		{"ReactionTooLong", []string{"--reaction", long}, `--reaction "` + long + `": is 65 bytes long, the limit is 64`},
		{"UserEmpty", []string{"--user", ""}, `--user "": is required`},
		{"UserNotUTF8", []string{"--user", "a\xffb"}, `--user "a\xffb": is not valid UTF-8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"pub", "--broker", addr, "--timeout", "10s",
				"--content", "Stew", "--reaction", "fire", "--user", "Sam"}
			args = append(args, tc.flags...) // a flag given twice: the last one counts
			start := time.Now()
			stdout, _, err := MustRun(t, nil, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "not published: ") {
				t.Fatalf("pub = %v, want an error %q", err, "not published: "+tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("pub took %v to refuse, want at once", d)
			}
		})
	}
	t.Cleanup(func() {
		if n := accepted.Load(); n != 0 {
			t.Errorf("pub connected %d times, want no connection for ids it refuses", n)
		}
	})
}

// TestRun_PubFailureReason checks that a PUBACK with a failure reason code is an
// error naming the code, and never "acknowledged": the daemon here refuses every pub
// payload as too large (mqtt.max_event_payload 16 bytes).
func TestRun_PubFailureReason(t *testing.T) {
	t.Parallel()
	s := MustServe(t, map[string]string{
		"ARINA_MQTT_LISTEN":            "127.0.0.1:0",
		"ARINA_HTTP_LISTEN":            "127.0.0.1:0",
		"ARINA_STORE_DURABILITY":       "none",
		"ARINA_MQTT_MAX_EVENT_PAYLOAD": "16",
	}, "serve")
	stdout, _, err := MustRun(t, nil, "pub", "--broker", s.MQTTAddr, "--content", "Stew", "--reaction", "fire", "--user", "Sam")
	if err == nil || !strings.Contains(err.Error(), "refused with reason 0x99") {
		t.Fatalf("pub = %q, %v; want an error naming reason 0x99", stdout, err)
	}
	if strings.Contains(stdout, "acknowledged") {
		t.Errorf("stdout = %q, want no \"acknowledged\" for a refused event", stdout)
	}
	if err := s.Stop(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// countingListener listens on a loopback port, closes every connection it accepts and
// counts them, until the test ends: the address of a "broker" that a command must not
// reach.
func countingListener(tb testing.TB) (addr string, accepted *atomic.Int64) {
	return testListener(tb, false)
}

// silentListener listens on a loopback port and holds every connection it accepts
// open without answering, until the test ends: a server that never answers.
func silentListener(tb testing.TB) (addr string) {
	addr, _ = testListener(tb, true)
	return addr
}

// testListener accepts and counts connections on a loopback port until the test ends;
// it closes each at once, or with hold keeps them open, unanswered, until then.
func testListener(tb testing.TB, hold bool) (addr string, accepted *atomic.Int64) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			if hold {
				held = append(held, c)
			} else {
				c.Close()
			}
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}
