package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arina-dev/arina/internal/config"
	"github.com/arina-dev/arina/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for one writer (the daemon's logger) and a reader
// (the test) at the same time.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// MustRun runs the command line args like main does, with env as the environment, and
// returns its standard output and error. It is for commands that end by themselves: a
// serve started by mistake is stopped after 30s.
func MustRun(tb testing.TB, env map[string]string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, args, &out, &errOut, mapEnv(env))
	return out.String(), errOut.String(), err
}

// served is `arina serve` (or bare `arina`) running in a goroutine through run.
type served struct {
	MQTTAddr, HTTPAddr string // bound addresses, from the "arina started" log line
	Stderr             *syncBuffer

	cancel context.CancelFunc
	done   chan error
}

// startedText matches the text-format "arina started" line.
var startedText = regexp.MustCompile(`msg="arina started" mqtt=(\S+) http=(\S+)`)

// startedAddrs finds the bound addresses in the "arina started" log line, in either
// log format.
func startedAddrs(log string) (mqtt, http string, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		line := sc.Text()
		var rec struct{ Msg, MQTT, HTTP string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "arina started" {
			return rec.MQTT, rec.HTTP, true
		}
		if m := startedText.FindStringSubmatch(line); m != nil {
			return m[1], m[2], true
		}
	}
	return "", "", false
}

// MustServe runs args (a serve command line) with env until the daemon logs that it
// started, and returns its bound addresses. Stop shuts it down; t.Cleanup does too if
// the test did not.
func MustServe(tb testing.TB, env map[string]string, args ...string) *served {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{Stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	var stdout syncBuffer
	go func() { s.done <- run(ctx, args, &stdout, s.Stderr, mapEnv(env)) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			tb.Errorf("arina %q did not stop within 30s after cancel; log:\n%s", args, s.Stderr)
		}
	})
	testutil.WaitFor(tb, 10*time.Second, func() error {
		select {
		case err := <-s.done:
			s.done <- err // for Stop and the cleanup
			tb.Fatalf("arina %q returned before starting: %v; log:\n%s", args, err, s.Stderr)
		default:
		}
		var ok bool
		if s.MQTTAddr, s.HTTPAddr, ok = startedAddrs(s.Stderr.String()); !ok {
			return errors.New(`no "arina started" log line yet`)
		}
		return nil
	})
	return s
}

// Stop cancels the daemon's context, as a first SIGINT does, and returns run's result.
// It fails the test if run does not return within timeout.
func (s *served) Stop(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(timeout):
		tb.Fatalf("run did not return within %v after cancel; log:\n%s", timeout, s.Stderr)
		return nil
	}
}

// MustWriteConfig writes a YAML configuration file into a temporary directory.
func MustWriteConfig(tb testing.TB, yaml string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "arina.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestRun_Version(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"version", "--config", "testdata/unknown_key.yaml"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			stdout, _, err := MustRun(t, nil, args...)
			if err != nil {
				t.Fatalf("run = %v", err)
			}
			if !strings.HasPrefix(stdout, "arina ") || strings.Count(stdout, "\n") != 1 {
				t.Fatalf("stdout = %q, want one line starting with %q", stdout, "arina ")
			}
		})
	}
}

func TestRun_CheckConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want []string // substrings of the error; nil: success
		is   error
	}{
		{"Defaults", nil, nil, nil, nil},
		{"GoodFile", nil, []string{"--config", "testdata/good.yaml"}, nil, nil},
		{"Example", nil, []string{"--config", exampleConfig}, nil, nil},
		{"UnknownKey", nil, []string{"--config", "testdata/unknown_key.yaml"}, []string{"listn"}, config.ErrUnknownKey},
		{"InvalidValues", nil, []string{"--config", "testdata/invalid.yaml"},
			[]string{"mqtt.listen", "mqtt.topic_prefix", "ingest.queue_size", "log.level"}, config.ErrOutOfRange},
		{"MissingFile", nil, []string{"--config", "testdata/nope.yaml"}, []string{"testdata/nope.yaml"}, nil},
		{"BadEnv", map[string]string{"ARINA_LOG_LEVEL": "loud"}, []string{"--config", "testdata/good.yaml"}, []string{"log.level", "loud"}, config.ErrInvalidChoice},
		{"BadFlag", nil, []string{"--config", "testdata/good.yaml", "--log-format", "xml"}, []string{"log.format", "xml"}, config.ErrInvalidChoice},
		{"FlagFixesFile", nil, []string{"--config", "testdata/invalid.yaml",
			"--mqtt-listen", "127.0.0.1:1", "--mqtt-topic-prefix", "k", "--log-level", "info"},
			[]string{"ingest.queue_size"}, config.ErrOutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, _, err := MustRun(t, tc.env, append([]string{"check-config"}, tc.args...)...)
			if tc.want == nil {
				if err != nil || stdout != "configuration ok\n" {
					t.Fatalf("run = %v, stdout %q; want nil and %q", err, stdout, "configuration ok\n")
				}
				return
			}
			if err == nil {
				t.Fatalf("run = nil, stdout %q; want an error", stdout)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error = %q, want it to contain %q", err, s)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error = %v, want it to wrap %v", err, tc.is)
			}
			if tc.name == "FlagFixesFile" {
				for _, s := range []string{"mqtt.listen", "mqtt.topic_prefix", "log.level"} {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error = %q names %s, which a flag fixed", err, s)
					}
				}
			}
		})
	}
}

// TestRun_ConfigFlagEverySubcommand checks that every subcommand accepts --config and
// that those that use the configuration read the file: a file with an unknown key
// fails them all, before any network use.
func TestRun_ConfigFlagEverySubcommand(t *testing.T) {
	t.Parallel()
	const bad = "testdata/unknown_key.yaml"
	for _, args := range [][]string{
		{},
		{"serve"},
		{"check-config"},
		{"pub", "--content", "Stew", "--reaction", "fire", "--user", "Sam"},
		{"counts", "Stew"},
	} {
		t.Run(strings.Join(append([]string{"arina"}, args...), " "), func(t *testing.T) {
			t.Parallel()
			for _, pos := range []string{"Before", "After"} {
				t.Run(pos, func(t *testing.T) {
					full := append([]string{"--config", bad}, args...)
					if pos == "After" {
						full = append(append([]string{}, args...), "--config", bad)
					}
					_, _, err := MustRun(t, nil, full...)
					if !errors.Is(err, config.ErrUnknownKey) || !strings.Contains(err.Error(), "listn") {
						t.Fatalf("run(%q) = %v, want the unknown key listn", full, err)
					}
				})
			}
		})
	}
}

func TestRun_Serve(t *testing.T) {
	t.Parallel()
	const prefix = "plant1/kitchen" // not the default: pub must get it from env or file
	serveEnv := map[string]string{
		"ARINA_MQTT_LISTEN":       "127.0.0.1:0",
		"ARINA_HTTP_LISTEN":       "127.0.0.1:0",
		"ARINA_MQTT_TOPIC_PREFIX": prefix,
		"ARINA_INGEST_QUEUE_SIZE": "8",
		"ARINA_INGEST_BATCH_SIZE": "2",
		"ARINA_STORE_DATA_DIR":    t.TempDir(),
		"ARINA_LOG_FORMAT":        "json",
		"ARINA_LOG_LEVEL":         "debug",
	}
	s := MustServe(t, serveEnv, "serve")
	if strings.Contains(s.Stderr.String(), "loopback only") {
		t.Errorf("explicit 127.0.0.1 listeners got the loopback warning:\n%s", s.Stderr)
	}
	clientEnv := map[string]string{"ARINA_MQTT_TOPIC_PREFIX": prefix}
	pub := func(user string, extra ...string) (string, error) {
		args := append([]string{"pub", "--broker", s.MQTTAddr, "--content", "Stew", "--reaction", "fire", "--user", user}, extra...)
		stdout, _, err := MustRun(t, clientEnv, args...)
		return stdout, err
	}
	counts := func(content string, extra ...string) (string, error) {
		stdout, _, err := MustRun(t, clientEnv, append([]string{"counts", "--server", s.HTTPAddr, content}, extra...)...)
		return stdout, err
	}
	wantCounts := func(t *testing.T, content, want string) {
		t.Helper()
		// An MQTT 5 QoS 1 PUBACK is sent once the event is applied: no polling needed.
		if got, err := counts(content); err != nil || got != want {
			t.Fatalf("counts %s = %q, %v; want %q", content, got, err, want)
		}
	}

	t.Run("PubAcknowledged", func(t *testing.T) {
		stdout, err := pub("Sam")
		if err != nil {
			t.Fatalf("pub = %v", err)
		}
		if want := "add Sam on " + prefix + "/Stew/fire: acknowledged\n"; stdout != want {
			t.Fatalf("pub stdout = %q, want %q", stdout, want)
		}
	})
	t.Run("Counts", func(t *testing.T) { wantCounts(t, "Stew", "fire\t1\n") })
	t.Run("CountsJSON", func(t *testing.T) {
		stdout, err := counts("Stew", "--json")
		var body struct {
			ContentID     string           `json:"content_id"`
			ReactionCount map[string]int64 `json:"reaction_count"`
		}
		if err != nil || json.Unmarshal([]byte(stdout), &body) != nil || body.ContentID != "Stew" || body.ReactionCount["fire"] != 1 {
			t.Fatalf("counts --json = %q, %v; want Stew with fire 1", stdout, err)
		}
	})
	t.Run("CountsServerURL", func(t *testing.T) {
		if got, err := counts("Stew", "--server", "http://"+s.HTTPAddr); err != nil || got != "fire\t1\n" {
			t.Fatalf("counts --server http://... = %q, %v", got, err)
		}
	})
	t.Run("CountsUnknownContent", func(t *testing.T) {
		stdout, err := counts("NoSuchDish")
		if !errors.Is(err, errNotFound) || !strings.Contains(err.Error(), "NoSuchDish") {
			t.Fatalf("counts NoSuchDish = %q, %v; want errNotFound naming the content", stdout, err)
		}
	})
	t.Run("PubInvalidID", func(t *testing.T) {
		stdout, err := pub("a\x01b")
		if err == nil || !strings.Contains(err.Error(), `--user "a\x01b": contains control character`) || stdout != "" {
			t.Fatalf("pub with a control character = %q, %v; want an error naming --user and its value", stdout, err)
		}
		wantCounts(t, "Stew", "fire\t1\n")
	})
	t.Run("PubQoS0NotAcknowledged", func(t *testing.T) {
		stdout, err := pub("Kim", "--qos", "0")
		if want := "add Kim on " + prefix + "/Stew/fire: sent (QoS 0, not acknowledged)\n"; err != nil || stdout != want {
			t.Fatalf("pub --qos 0 = %q, %v; want %q", stdout, err, want)
		}
		testutil.WaitFor(t, 10*time.Second, func() error {
			if got, err := counts("Stew"); err != nil || got != "fire\t2\n" {
				return fmt.Errorf("counts Stew = %q, %v; want fire 2", got, err)
			}
			return nil
		})
		if _, err := pub("Kim", "--remove"); err != nil {
			t.Fatal(err)
		}
		wantCounts(t, "Stew", "fire\t1\n")
	})
	t.Run("PubRemove", func(t *testing.T) {
		if _, err := pub("Ann"); err != nil {
			t.Fatal(err)
		}
		wantCounts(t, "Stew", "fire\t2\n")
		stdout, err := pub("Ann", "--remove")
		if err != nil || !strings.HasPrefix(stdout, "remove Ann on ") {
			t.Fatalf("pub --remove = %q, %v", stdout, err)
		}
		wantCounts(t, "Stew", "fire\t1\n")
	})
	t.Run("PubBadQoS", func(t *testing.T) {
		if _, err := pub("Sam", "--qos", "2"); err == nil || !strings.Contains(err.Error(), "--qos 2") {
			t.Fatalf("pub --qos 2 = %v, want an error naming --qos", err)
		}
	})
	t.Run("ClientsFromConfigFile", func(t *testing.T) {
		// No --broker, --server or environment: addresses and prefix come from the file.
		cfg := MustWriteConfig(t, fmt.Sprintf("mqtt:\n  listen: %q\n  topic_prefix: %q\nhttp:\n  listen: %q\n",
			s.MQTTAddr, prefix, s.HTTPAddr))
		stdout, _, err := MustRun(t, nil, "pub", "--config", cfg, "--content", "Soup", "--reaction", "yum", "--user", "Bob")
		if err != nil || !strings.Contains(stdout, "acknowledged") {
			t.Fatalf("pub --config = %q, %v", stdout, err)
		}
		stdout, _, err = MustRun(t, nil, "counts", "--config", cfg, "Soup")
		if err != nil || stdout != "yum\t1\n" {
			t.Fatalf("counts --config = %q, %v; want %q", stdout, err, "yum\t1\n")
		}
	})

	// The last event is acknowledged right before shutdown, with no read in between.
	if _, err := pub("Zoe", "--reaction", "love"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(t, 10*time.Second); err != nil {
		t.Fatalf("run after cancel = %v, want nil; log:\n%s", err, s.Stderr)
	}
	log := s.Stderr.String()
	for _, want := range []string{`"msg":"shutting down`, `"msg":"arina stopped"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log has no %s:\n%s", want, log)
		}
	}
	if strings.Contains(log, `"level":"ERROR"`) {
		t.Errorf("log has errors:\n%s", log)
	}
	// The listeners are closed.
	if listening, err := listensHere(s.MQTTAddr); err != nil {
		t.Fatal(err)
	} else if listening {
		t.Errorf("MQTT listener %s still open after shutdown", s.MQTTAddr)
	}
	if _, err := counts("Stew", "--timeout", "2s"); err == nil {
		t.Errorf("HTTP API %s still answers after shutdown", s.HTTPAddr)
	}

	// Every acknowledged event, the last one included, was applied and kept: a new
	// daemon on the same data directory has them all.
	s = MustServe(t, serveEnv, "serve")
	wantCounts(t, "Stew", "fire\t1\nlove\t1\n")
	wantCounts(t, "Soup", "yum\t1\n")
	if err := s.Stop(t, 10*time.Second); err != nil {
		t.Fatalf("second run after cancel = %v, want nil; log:\n%s", err, s.Stderr)
	}
}

// TestRun_BareArinaServes checks that `arina` with no subcommand serves, with serve's
// flags, and that an address without a host binds loopback with a warning.
func TestRun_BareArinaServes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"Flags", []string{"--mqtt-listen", ":0", "--http-listen", "127.0.0.1:0", "--durability", "none", "--log-format", "text"}},
		{"ConfigFile", []string{"--config", "testdata/good.yaml", "--mqtt-listen", ":0", "--http-listen", "127.0.0.1:0", "--data-dir", t.TempDir()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := MustServe(t, nil, tc.args...)
			if host, _, _ := net.SplitHostPort(s.MQTTAddr); host != "127.0.0.1" {
				t.Errorf("mqtt.listen :0 bound %s, want loopback", s.MQTTAddr)
			}
			log := s.Stderr.String()
			for _, want := range []string{"mqtt.listen", "loopback only", "mqtt.auth.users_file", "mqtt.allow_anonymous"} {
				if !strings.Contains(log, want) {
					t.Errorf("log has no %q warning:\n%s", want, log)
				}
			}
			if strings.Count(log, "loopback only") != 1 {
				t.Errorf("want one loopback warning (mqtt only), log:\n%s", log)
			}

			env := map[string]string{}
			if tc.name == "ConfigFile" {
				env["ARINA_MQTT_TOPIC_PREFIX"] = "plant1/kitchen" // as in good.yaml
			}
			stdout, _, err := MustRun(t, env, "pub", "--broker", s.MQTTAddr, "--content", "Stew", "--reaction", "fire", "--user", "Sam")
			if err != nil || !strings.Contains(stdout, "acknowledged") {
				t.Fatalf("pub = %q, %v", stdout, err)
			}
			stdout, _, err = MustRun(t, env, "counts", "--server", s.HTTPAddr, "Stew")
			if err != nil || stdout != "fire\t1\n" {
				t.Fatalf("counts = %q, %v", stdout, err)
			}
			if err := s.Stop(t, 10*time.Second); err != nil {
				t.Fatalf("run after cancel = %v, want nil; log:\n%s", err, s.Stderr)
			}
		})
	}
}

func TestRun_ServeErrors(t *testing.T) {
	t.Parallel()
	// A port in use: the daemon fails to start and run returns at once, without ctx.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // after the parallel subtests, unlike defer
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"AddressInUse", []string{"serve", "--mqtt-listen", ln.Addr().String(), "--http-listen", "127.0.0.1:0", "--durability", "none"}, ln.Addr().String()},
		{"DataDirNotADirectory", []string{"serve", "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--data-dir", "testdata/good.yaml"}, "testdata/good.yaml"},
		{"InvalidConfig", []string{"serve", "--mqtt-listen", "nohost"}, "mqtt.listen"},
		{"UnexpectedArg", []string{"serve", "extra"}, "extra"},
		{"UnknownCommand", []string{"serv"}, "serv"},
		{"UnknownFlag", []string{"--mqtt-listn", ":1"}, "mqtt-listn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := MustRun(t, nil, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

// apiGet GETs u with the default client and returns the response (its body already
// read, at most limit bytes, and closed) and the body.
func apiGet(ctx context.Context, u string, limit int64) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	return resp, body, err
}

// listensHere reports whether this process has a socket listening on addr's TCP port.
// Dialing the port would not tell: once arina closed it, another test process may
// listen there, or a dial may connect to itself.
func listensHere(addr string) (bool, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return false, err
	}
	inodes := map[string]bool{} // of sockets listening on port, in any process
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			if i := strings.LastIndexByte(fs[1], ':'); i >= 0 && fs[1][i+1:] == fmt.Sprintf("%04X", port) {
				inodes[fs[9]] = true
			}
		}
	}
	if len(inodes) == 0 {
		return false, nil
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(link, "socket:[") && inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			return true, nil
		}
	}
	return false, nil
}

func TestListensHere(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := listensHere(l.Addr().String()); !ok || err != nil {
		t.Errorf("listensHere(%s) with the listener open = %v, %v; want true", l.Addr(), ok, err)
	}
	l.Close()
	if ok, err := listensHere(l.Addr().String()); ok || err != nil {
		t.Errorf("listensHere(%s) after Close = %v, %v; want false", l.Addr(), ok, err)
	}
}
