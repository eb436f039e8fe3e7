package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestListenPolicy: the safe default, like Mosquitto 2. Without authentication an
// address with no host binds loopback only and a network address is refused, unless
// allow_anonymous; with authentication every address binds as written.
func TestListenPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr         string
		authed, anon bool
		want         string   // "": refused
		warn         []string // substrings of the warning; nil: none
	}{
		{":1883", false, false, "127.0.0.1:1883", []string{"mqtt.listen", `":1883"`, "loopback", "mqtt.auth.users_file", "mqtt.allow_anonymous"}},
		{":0", false, false, "127.0.0.1:0", []string{"loopback"}},
		{"0.0.0.0:1883", false, false, "", nil},
		{"[::]:1883", false, false, "", nil},
		{"192.0.2.7:1883", false, false, "", nil},
		{"example.com:1883", false, false, "", nil},
		{"0.0.0.0:1883", false, true, "0.0.0.0:1883", []string{"reachable from the network", "mqtt.allow_anonymous"}},
		{":1883", false, true, ":1883", []string{"reachable from the network"}},
		{"0.0.0.0:1883", true, false, "0.0.0.0:1883", nil},
		{":1883", true, false, ":1883", nil},
		{"127.0.0.1:1", false, false, "127.0.0.1:1", nil},
		{"127.0.0.2:1883", false, false, "127.0.0.2:1883", nil},
		{"[::1]:1883", false, false, "[::1]:1883", nil},
		{"localhost:1883", false, false, "localhost:1883", nil},
	} {
		t.Run(fmt.Sprintf("%s/auth=%v/anon=%v", tc.addr, tc.authed, tc.anon), func(t *testing.T) {
			t.Parallel()
			got, warn, err := listenPolicy("mqtt.listen", tc.addr, "mqtt.auth.users_file", tc.authed, tc.anon)
			if tc.want == "" {
				if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "mqtt.auth.users_file") {
					t.Fatalf("listenPolicy(%q) = %q, %v; want ErrInsecure naming mqtt.auth.users_file", tc.addr, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("listenPolicy(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
			}
			if (tc.warn == nil) != (warn == "") {
				t.Errorf("listenPolicy(%q) warning = %q, want %v", tc.addr, warn, tc.warn)
			}
			for _, s := range tc.warn {
				if !strings.Contains(warn, s) {
					t.Errorf("listenPolicy(%q) warning = %q, want it to contain %q", tc.addr, warn, s)
				}
			}
		})
	}
}
