package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/internal/testutil"
)

// The secured site of these tests: a users file, a tokens file, and TLS on every
// listener that has it (MQTT over TLS, WebSocket and secure WebSocket, HTTPS).
const (
	securePassword = "pw-sensor 1"  // user "sensor", may write kitchen/#
	secureRead     = "tok-read-1"   // token "board", scope read
	secureWrite    = "tok-write-1"  // token "line-app", scope write only
	secureWrongPW  = "not-the-pw-1" // nobody's password
)

const secureUsers = `users:
  - username: sensor
    password_hash: "%s"
    acl:
      - {topic: "kitchen/#", access: write}
  - username: badge-reader-1
    certificate_only: true
    acl:
      - {topic: "kitchen/#", access: write}
`

// secureSite is a daemon with authentication and TLS, and the files a client needs.
type secureSite struct {
	*served
	certs                     *testutil.Certs
	tlsAddr, wsAddr, wssAddr  string
	passwordFile, wrongPWFile string
	env                       map[string]string // the daemon's environment
	usersFile                 string
}

var startedExtra = regexp.MustCompile(`mqtt_(tls|ws|wss)=(\S+)`)

func startSecureSite(tb testing.TB) *secureSite {
	tb.Helper()
	s := &secureSite{certs: testutil.MakeCerts(tb)}
	dir := tb.TempDir()
	h, err := bcrypt.GenerateFromPassword([]byte(securePassword), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	s.usersFile = write("users.yaml", fmt.Sprintf(secureUsers, h))
	tokens := write("tokens.yaml", fmt.Sprintf("tokens:\n  - {name: board, sha256: %s, scopes: [read]}\n  - {name: line-app, sha256: %s, scopes: [write]}\n",
		auth.HashToken(secureRead), auth.HashToken(secureWrite)))
	s.passwordFile = write("password", securePassword+"\n")
	s.wrongPWFile = write("wrong", secureWrongPW+"\n")
	s.env = map[string]string{
		"ARINA_MQTT_LISTEN":             "127.0.0.1:0",
		"ARINA_HTTP_LISTEN":             "127.0.0.1:0",
		"ARINA_STORE_DURABILITY":        "none",
		"ARINA_MQTT_AUTH_USERS_FILE":    s.usersFile,
		"ARINA_LOG_LEVEL":               "debug",
		"ARINA_HTTP_AUTH_TOKENS_FILE":   tokens,
		"ARINA_MQTT_TLS_LISTEN":         "127.0.0.1:0",
		"ARINA_MQTT_TLS_CERT_FILE":      s.certs.ServerCert,
		"ARINA_MQTT_TLS_KEY_FILE":       s.certs.ServerKey,
		"ARINA_MQTT_TLS_CLIENT_CA_FILE": s.certs.CAFile,
		"ARINA_MQTT_WS_LISTEN":          "127.0.0.1:0",
		"ARINA_MQTT_WS_TLS_LISTEN":      "127.0.0.1:0",
		"ARINA_HTTP_TLS_CERT_FILE":      s.certs.ServerCert,
		"ARINA_HTTP_TLS_KEY_FILE":       s.certs.ServerKey,
	}
	s.served = MustServe(tb, s.env, "serve")
	for _, m := range startedExtra.FindAllStringSubmatch(s.Stderr.String(), -1) {
		switch m[1] {
		case "tls":
			s.tlsAddr = m[2]
		case "ws":
			s.wsAddr = m[2]
		case "wss":
			s.wssAddr = m[2]
		}
	}
	if s.tlsAddr == "" || s.wsAddr == "" || s.wssAddr == "" {
		tb.Fatalf("no mqtt_tls, mqtt_ws and mqtt_wss addresses in the start line:\n%s", s.Stderr)
	}
	return s
}

// runQuick runs a client command that must end, either way, well within its timeout:
// a refusal is an answer, not a wait.
func runQuick(tb testing.TB, env map[string]string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	start := time.Now()
	stdout, stderr, err = MustRun(tb, env, args...)
	if d := time.Since(start); d > 5*time.Second {
		tb.Errorf("arina %q took %v, want an answer at once", args, d)
	}
	if err != nil && strings.Contains(err.Error(), "context deadline exceeded") {
		tb.Errorf("arina %q = %v, want an error that says what is wrong, not a timeout", args, err)
	}
	return stdout, stderr, err
}

// TestRun_PubSecured: pub reaches a secured broker over TCP, TLS, WebSocket and
// secure WebSocket with a password (option file or environment) or a client
// certificate, and every wrong or missing credential is an error that says which
// option fixes it, at once.
func TestRun_PubSecured(t *testing.T) {
	t.Parallel()
	s := startSecureSite(t)
	ev := []string{"pub", "--timeout", "10s", "--content", "Stew", "--reaction", "fire", "--user", "sam"}
	envPW := map[string]string{envPassword: securePassword}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want []string // substrings of the error; nil: acknowledged
		warn string   // substring of stderr
	}{
		{"TCPPasswordFile", nil, []string{"--broker", s.MQTTAddr, "-u", "sensor", "--password-file", s.passwordFile}, nil, ""},
		{"TCPURLEnvPassword", envPW, []string{"--broker", "mqtt://" + s.MQTTAddr, "--username", "sensor"}, nil, ""},
		{"TLSCAFile", envPW, []string{"--broker", "mqtts://" + s.tlsAddr, "-u", "sensor", "--cafile", s.certs.CAFile}, nil, ""},
		{"TLSBareHostPortWithCAFile", envPW, []string{"--broker", s.tlsAddr, "-u", "sensor", "--cafile", s.certs.CAFile}, nil, ""},
		{"TLSClientCertificate", nil, []string{"--broker", "mqtts://" + s.tlsAddr, "--cafile", s.certs.CAFile,
			"--cert", s.certs.ClientCert, "--key", s.certs.ClientKey}, nil, ""},
		{"WebSocket", envPW, []string{"--broker", "ws://" + s.wsAddr + "/mqtt", "-u", "sensor"}, nil, ""},
		{"SecureWebSocket", envPW, []string{"--broker", "wss://" + s.wssAddr, "-u", "sensor", "--cafile", s.certs.CAFile}, nil, ""},
		{"PasswordFlag", nil, []string{"--broker", s.MQTTAddr, "-u", "sensor", "--password", securePassword}, nil, ""},
		{"ClientID", envPW, []string{"--broker", s.MQTTAddr, "-u", "sensor", "--client-id", "line-3-reader"}, nil, ""},
		{"InsecureWhenAsked", envPW, []string{"--broker", "mqtts://" + s.tlsAddr, "-u", "sensor", "--insecure"}, nil, "warning: --insecure"},

		{"NoLogin", nil, []string{"--broker", s.MQTTAddr},
			[]string{"refused with reason 0x87", "wants a login", "-u/--username", "--password-file", envPassword}, ""},
		{"EnvPasswordNoUsername", envPW, []string{"--broker", s.MQTTAddr}, []string{"0x87", "-u/--username"}, ""},
		{"WrongPassword", nil, []string{"--broker", s.MQTTAddr, "-u", "sensor", "--password-file", s.wrongPWFile},
			[]string{"refused with reason 0x86", "check -u/--username"}, ""},
		{"UsernameNoPassword", nil, []string{"--broker", s.MQTTAddr, "-u", "sensor"}, []string{"0x86", "check -u/--username and the password"}, ""},
		{"UntrustedWithoutCAFile", envPW, []string{"--broker", "mqtts://" + s.tlsAddr, "-u", "sensor"},
			[]string{"mqtts://" + s.tlsAddr, "not signed by a CA this client trusts", "--cafile", "--insecure"}, ""},
		{"UntrustedWSS", envPW, []string{"--broker", "wss://" + s.wssAddr, "-u", "sensor"},
			[]string{"not signed by a CA this client trusts", "--cafile"}, ""},
		{"OtherCAClientCertificate", nil, []string{"--broker", "mqtts://" + s.tlsAddr, "--cafile", s.certs.CAFile,
			"--cert", s.certs.OtherCAClientCrt, "--key", s.certs.OtherCAClientKey}, []string{"connecting to mqtts://" + s.tlsAddr, "did not take the client certificate"}, ""},
		{"PlainToTLSPort", envPW, []string{"--broker", "mqtt://" + s.tlsAddr, "-u", "sensor"},
			[]string{"closed the connection before answering", "mqtts://" + s.tlsAddr}, ""},
		{"TLSToPlainPort", envPW, []string{"--broker", "mqtts://" + s.MQTTAddr, "-u", "sensor", "--cafile", s.certs.CAFile},
			[]string{"TLS handshake with " + s.MQTTAddr}, ""},
		{"CAFileOnPlainURL", envPW, []string{"--broker", "mqtt://" + s.MQTTAddr, "-u", "sensor", "--cafile", s.certs.CAFile},
			[]string{"plain MQTT", "mqtts://"}, ""},
		{"PasswordWithoutUsername", nil, []string{"--broker", s.MQTTAddr, "--password-file", s.passwordFile},
			[]string{"a password needs a username"}, ""},
		{"PasswordTwice", nil, []string{"--broker", s.MQTTAddr, "-u", "sensor", "--password", "x", "--password-file", s.passwordFile},
			[]string{"--password and --password-file: give one"}, ""},
		{"CertWithoutKey", nil, []string{"--broker", "mqtts://" + s.tlsAddr, "--cert", s.certs.ClientCert},
			[]string{"--cert and --key go together"}, ""},
		{"PasswordInURL", nil, []string{"--broker", "mqtt://sensor:pw@" + s.MQTTAddr},
			[]string{"not in the URL"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runQuick(t, tc.env, append(ev, tc.args...)...)
			if tc.want == nil {
				if err != nil || !strings.Contains(stdout, "acknowledged") {
					t.Fatalf("pub = %v, stdout %q, stderr %q; want acknowledged; daemon log:\n%s", err, stdout, stderr, s.Stderr)
				}
			} else {
				if err == nil {
					t.Fatalf("pub = nil, stdout %q; want an error with %q", stdout, tc.want)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("pub = %v\nwant it to contain %q", err, w)
					}
				}
				t.Logf("pub: %v", err)
				if strings.Contains(stdout, "acknowledged") {
					t.Errorf("stdout = %q after an error", stdout)
				}
			}
			if tc.warn != "" && !strings.Contains(stderr, tc.warn) {
				t.Errorf("stderr = %q, want %q", stderr, tc.warn)
			}
			if tc.warn == "" && strings.Contains(stderr, "--insecure") {
				t.Errorf("stderr = %q: a warning about --insecure, which was not given", stderr)
			}
		})
	}
}

// TestRun_APISecured: counts, watch and health reach an API with tokens and HTTPS
// (--token or ARINA_TOKEN, https:// with --cafile, or this configuration's own
// certificate), and a missing or wrong token or certificate is an error that says what
// to do, at once.
func TestRun_APISecured(t *testing.T) {
	t.Parallel()
	s := startSecureSite(t)
	if _, _, err := runQuick(t, map[string]string{envPassword: securePassword}, "pub", "--broker", s.MQTTAddr, "-u", "sensor",
		"--content", "Stew", "--reaction", "fire", "--user", "sam"); err != nil {
		t.Fatal(err)
	}
	https := "https://" + s.HTTPAddr
	read := map[string]string{envToken: secureRead}
	// own is the daemon's own configuration with its bound HTTP address: what a client
	// on the daemon's host (the container's health check) has.
	own := func(extra ...string) map[string]string {
		env := map[string]string{}
		for k, v := range s.env {
			env[k] = v
		}
		env["ARINA_HTTP_LISTEN"] = s.HTTPAddr
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		return env
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		out  string   // substring of stdout on success
		want []string // substrings of the error; nil: success
		warn string
	}{
		{"CountsTokenEnv", read, []string{"counts", "--server", https, "--cafile", s.certs.CAFile, "Stew"}, "fire\t1", nil, ""},
		{"CountsTokenFlag", nil, []string{"counts", "--server", https, "--cafile", s.certs.CAFile, "--token", secureRead, "Stew"}, "fire\t1", nil, ""},
		{"CountsBareHostPortWithCAFile", read, []string{"counts", "--server", s.HTTPAddr, "--cafile", s.certs.CAFile, "Stew"}, "fire\t1", nil, ""},
		{"CountsOwnCertificate", own(envToken, secureRead), []string{"counts", "Stew"}, "fire\t1", nil, ""},
		{"CountsInsecureWhenAsked", read, []string{"counts", "--server", https, "--insecure", "Stew"}, "fire\t1", nil, "warning: --insecure"},
		{"CountsNoToken", nil, []string{"counts", "--server", https, "--cafile", s.certs.CAFile, "Stew"}, "",
			[]string{"401", "the API wants a token", envToken}, ""},
		{"CountsWrongToken", map[string]string{envToken: "nope"}, []string{"counts", "--server", https, "--cafile", s.certs.CAFile, "Stew"}, "",
			[]string{"401", "refused the token"}, ""},
		{"CountsWriteOnlyToken", map[string]string{envToken: secureWrite}, []string{"counts", "--server", https, "--cafile", s.certs.CAFile, "Stew"}, "",
			[]string{"403", "lacks the scope", "read"}, ""},
		{"CountsUntrusted", read, []string{"counts", "--server", https, "Stew"}, "",
			[]string{"not signed by a CA this client trusts", "--cafile", "--insecure"}, ""},
		{"CountsPlainToHTTPS", read, []string{"counts", "--server", "http://" + s.HTTPAddr, "Stew"}, "",
			[]string{"speaks HTTPS", "https://"}, ""},
		{"CountsOwnWrongCertificate", own(envToken, secureRead, "ARINA_HTTP_TLS_CERT_FILE", s.certs.ClientCert, "ARINA_HTTP_TLS_KEY_FILE", s.certs.ClientKey), []string{"counts", "Stew"}, "",
			[]string{"not the one in " + s.certs.ClientCert}, ""},
		{"CountsCAFileOnPlainURL", read, []string{"counts", "--server", "http://" + s.HTTPAddr, "--cafile", s.certs.CAFile, "Stew"}, "",
			[]string{"plain HTTP", "https://"}, ""},

		{"WatchNoToken", nil, []string{"watch", "--server", https, "--cafile", s.certs.CAFile}, "",
			[]string{"change stream", "401", "the API wants a token", envToken}, ""},
		{"WatchWrongToken", map[string]string{envToken: "nope"}, []string{"watch", "--server", https, "--cafile", s.certs.CAFile}, "",
			[]string{"401", "refused the token"}, ""},
		{"WatchUntrusted", read, []string{"watch", "--server", https}, "",
			[]string{"not signed by a CA this client trusts", "--cafile"}, ""},

		{"HealthOwnCertificate", own(), []string{"health"}, "ok", nil, ""},
		{"HealthReadyOwnCertificate", own(), []string{"health", "--ready"}, "", nil, ""},
		{"HealthCAFile", nil, []string{"health", "--server", https, "--cafile", s.certs.CAFile}, "ok", nil, ""},
		{"HealthUntrusted", nil, []string{"health", "--server", https}, "",
			[]string{"not signed by a CA this client trusts", "--cafile"}, ""},
		{"HealthPlainToHTTPS", nil, []string{"health", "--server", s.HTTPAddr}, "",
			[]string{"speaks HTTPS", "https://"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runQuick(t, tc.env, tc.args...)
			if tc.want == nil {
				if err != nil || !strings.Contains(stdout, tc.out) {
					t.Fatalf("arina %q = %v, stdout %q, stderr %q; want success with %q", tc.args, err, stdout, stderr, tc.out)
				}
			} else {
				if err == nil {
					t.Fatalf("arina %q = nil, stdout %q; want an error with %q", tc.args, stdout, tc.want)
				}
				t.Logf("arina %s: %v", tc.args[0], err)
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("arina %q = %v\nwant it to contain %q", tc.args, err, w)
					}
				}
			}
			if tc.warn != "" && !strings.Contains(stderr, tc.warn) {
				t.Errorf("stderr = %q, want %q", stderr, tc.warn)
			}
			if tc.warn == "" && strings.Contains(stderr, "--insecure") {
				t.Errorf("stderr = %q: a warning about --insecure, which was not given", stderr)
			}
		})
	}

	// watch with a read token follows the stream.
	t.Run("WatchToken", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"watch", "--server", https, "--cafile", s.certs.CAFile, "Stew"}, &out, &out, mapEnv(read))
		}()
		defer func() { cancel(); <-done }()
		testutil.WaitFor(t, 10*time.Second, func() error {
			if !strings.Contains(out.String(), "Stew\tfire\t1\n-- live --") {
				return errNotLive
			}
			return nil
		})
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("watch = %v", err)
		}
		done <- nil
	})
}

// TestRun_BenchSecured: bench publishes to a secured broker (password or client
// certificate, over TCP, TLS and secure WebSocket), checks the store and measures
// visibility through an HTTPS API with a token, measures queries with a token, holds
// idle connections with a login; missing or wrong credentials stop it at once with a
// message that names the option, and publish nothing.
func TestRun_BenchSecured(t *testing.T) {
	t.Parallel()
	s := startSecureSite(t)
	https := "https://" + s.HTTPAddr
	both := map[string]string{envPassword: securePassword, envToken: secureRead}
	run := []string{"bench", "--events", "60", "--publishers", "2", "--contents", "3", "--users", "5", "--ack-timeout", "5s"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		out  string   // regular expression stdout matches on success
		want []string // substrings of the error; nil: success
	}{
		{"TCPVisibility", both, append(run, "--broker", s.MQTTAddr, "-u", "sensor", "--http", https, "--cafile", s.certs.CAFile, "--sample-every", "5", "--publishers", "1"),
			`acked\s+60 events(.|\n)*visible over HTTP\s+p50 .* 0 HTTP errors`, nil},
		{"TLS311Paho", both, append(run, "--broker", "mqtts://"+s.tlsAddr, "-u", "sensor", "--http", https, "--cafile", s.certs.CAFile,
			"--protocol", "311", "--client", "paho"), `acked\s+60 events`, nil},
		{"WSSCertificate", both, append(run, "--broker", "wss://"+s.wssAddr, "--cert", s.certs.ClientCert, "--key", s.certs.ClientKey,
			"--http", https, "--cafile", s.certs.CAFile, "--client-id", "bench-badge-"), `acked\s+60 events`, nil},
		{"NoStoreCheckWS", map[string]string{envPassword: securePassword}, append(run, "--broker", "ws://"+s.wsAddr, "-u", "sensor", "--no-store-check"),
			`acked\s+60 events`, nil},
		{"Queries", both, []string{"bench", "--queries", "--http", https, "--cafile", s.certs.CAFile, "--duration", "300ms", "--publishers", "2"},
			` 0 errors`, nil},
		{"Idle", both, []string{"bench", "--idle", "3", "--hold", "10ms", "--broker", "mqtts://" + s.tlsAddr, "-u", "sensor", "--cafile", s.certs.CAFile},
			`opened\s+3 of 3`, nil},

		{"NoPassword", map[string]string{envToken: secureRead}, append(run, "--broker", s.MQTTAddr, "--http", https, "--cafile", s.certs.CAFile),
			"", []string{"refused with reason 0x87", "the broker wants a login", "-u/--username", envPassword}},
		{"WrongPassword311", map[string]string{envToken: secureRead, envPassword: secureWrongPW}, append(run, "--broker", s.MQTTAddr, "-u", "sensor",
			"--http", https, "--cafile", s.certs.CAFile, "--protocol", "311"), "", []string{"refused with return code 4", "check -u/--username"}},
		{"NoToken", map[string]string{envPassword: securePassword}, append(run, "--broker", s.MQTTAddr, "-u", "sensor", "--http", https, "--cafile", s.certs.CAFile),
			"", []string{"not publishing", "401", "the API wants a token", envToken}},
		{"UntrustedBroker", both, append(run, "--broker", "mqtts://"+s.tlsAddr, "-u", "sensor", "--no-store-check"),
			"", []string{"not signed by a CA this client trusts", "--cafile"}},
		{"UntrustedAPI", both, append(run, "--broker", s.MQTTAddr, "-u", "sensor", "--http", https),
			"", []string{"not publishing", "not signed by a CA this client trusts", "--cafile"}},
		{"QueriesNoToken", nil, []string{"bench", "--queries", "--http", https, "--cafile", s.certs.CAFile, "--duration", "300ms"},
			"", []string{"not querying", "401", "the API wants a token"}},
		{"QueriesWriteOnlyToken", map[string]string{envToken: secureWrite}, []string{"bench", "--queries", "--http", https, "--cafile", s.certs.CAFile, "--duration", "300ms"},
			"", []string{"not querying", "403", "lacks the scope"}},
		{"IdleNoLogin", nil, []string{"bench", "--idle", "2", "--hold", "10ms", "--broker", s.MQTTAddr},
			"", []string{"0x87", "the broker wants a login"}},
		{"CAFileUnused", both, append(run, "--broker", "mqtt://"+s.MQTTAddr, "-u", "sensor", "--no-store-check", "--cafile", s.certs.CAFile),
			"", []string{"would not be used"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runQuick(t, tc.env, tc.args...)
			if tc.want == nil {
				if err != nil || !regexp.MustCompile(tc.out).MatchString(stdout) {
					t.Fatalf("bench = %v, stdout:\n%s\nstderr:\n%s\nwant success with %q", err, stdout, stderr, tc.out)
				}
				return
			}
			if err == nil {
				t.Fatalf("bench = nil, stdout:\n%s\nwant an error with %q", stdout, tc.want)
			}
			t.Logf("bench: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("bench = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// TestRun_PubAgreesWithMosquittoPub: for each login, arina pub and mosquitto_pub
// (MQTT 5, QoS 1) against the same secured daemon both succeed or both fail: arina's
// options mean what mosquitto_pub's do.
func TestRun_PubAgreesWithMosquittoPub(t *testing.T) {
	t.Parallel()
	bin := testutil.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	s := startSecureSite(t)
	hostPort := func(addr string) []string {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		return []string{"-h", host, "-p", port}
	}
	for _, tc := range []struct {
		name      string
		arina     []string // pub options
		env       map[string]string
		mosquitto []string // mosquitto_pub options
		ok        bool
	}{
		{"Password", []string{"--broker", s.MQTTAddr, "-u", "sensor", "--password-file", s.passwordFile},
			nil, append(hostPort(s.MQTTAddr), "-u", "sensor", "-P", securePassword), true},
		{"WrongPassword", []string{"--broker", s.MQTTAddr, "-u", "sensor", "--password-file", s.wrongPWFile},
			nil, append(hostPort(s.MQTTAddr), "-u", "sensor", "-P", secureWrongPW), false},
		{"Anonymous", []string{"--broker", s.MQTTAddr}, nil, hostPort(s.MQTTAddr), false},
		{"UnknownUser", []string{"--broker", s.MQTTAddr, "-u", "nobody"}, map[string]string{envPassword: securePassword},
			append(hostPort(s.MQTTAddr), "-u", "nobody", "-P", securePassword), false},
		{"TLSCAFile", []string{"--broker", s.tlsAddr, "--cafile", s.certs.CAFile, "-u", "sensor"}, map[string]string{envPassword: securePassword},
			append(hostPort(s.tlsAddr), "--cafile", s.certs.CAFile, "-u", "sensor", "-P", securePassword), true},
		{"TLSClientCertificate", []string{"--broker", s.tlsAddr, "--cafile", s.certs.CAFile, "--cert", s.certs.ClientCert, "--key", s.certs.ClientKey},
			nil, append(hostPort(s.tlsAddr), "--cafile", s.certs.CAFile, "--cert", s.certs.ClientCert, "--key", s.certs.ClientKey), true},
		{"TLSExpiredClientCertificate", []string{"--broker", s.tlsAddr, "--cafile", s.certs.CAFile, "--cert", s.certs.ExpiredCert, "--key", s.certs.ExpiredKey},
			nil, append(hostPort(s.tlsAddr), "--cafile", s.certs.CAFile, "--cert", s.certs.ExpiredCert, "--key", s.certs.ExpiredKey), false},
		{"TLSWithoutCA", []string{"--broker", "mqtts://" + s.tlsAddr, "-u", "sensor"}, map[string]string{envPassword: securePassword},
			append(hostPort(s.tlsAddr), "--capath", t.TempDir(), "-u", "sensor", "-P", securePassword), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, aerr := runQuick(t, tc.env, append([]string{"pub", "--content", "Stew", "--reaction", "fire", "--user", "sam"}, tc.arina...)...)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			out, merr := exec.CommandContext(ctx, bin, append(tc.mosquitto, "-V", "mqttv5", "-q", "1", "-i", "mosq-"+tc.name,
				"-t", "kitchen/Stew/fire", "-m", "add sam")...).CombinedOutput()
			if (aerr == nil) != tc.ok || (merr == nil) != tc.ok {
				t.Fatalf("arina pub = %v; mosquitto_pub = %v (%s); want both to succeed: %v", aerr, merr, strings.TrimSpace(string(out)), tc.ok)
			}
		})
	}
}

// TestRun_ClientSilentServer: a server that accepts connections and never answers
// is an error that says nothing answered within --timeout, for pub, counts, watch and bench.
func TestRun_ClientSilentServer(t *testing.T) {
	t.Parallel()
	addr := silentListener(t)
	for _, args := range [][]string{
		{"pub", "--broker", addr, "--timeout", "300ms", "--content", "Stew", "--reaction", "fire", "--user", "sam"},
		{"counts", "--server", addr, "--timeout", "300ms", "Stew"},
		{"watch", "--server", addr, "--timeout", "300ms"},
		{"bench", "--broker", addr, "--no-store-check", "--ack-timeout", "300ms", "--events", "10"},
	} {
		_, _, err := MustRun(t, nil, args...)
		if err == nil || !(strings.Contains(err.Error(), "no answer from "+addr+" within --timeout") ||
			strings.Contains(err.Error(), "at http://"+addr+": no answer within --timeout")) {
			t.Errorf("arina %s = %v, want an error saying nothing answered within --timeout", args[0], err)
		}
	}
}
