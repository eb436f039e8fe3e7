package mqttdial

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		tlsBare bool
		want    Target
		bad     bool
	}{
		{"127.0.0.1:1883", false, Target{Scheme: MQTT, Host: "127.0.0.1:1883"}, false},
		{"127.0.0.1:8883", true, Target{Scheme: MQTTS, Host: "127.0.0.1:8883"}, false},
		{"[::1]:1883", false, Target{Scheme: MQTT, Host: "[::1]:1883"}, false},
		{"mqtt://broker", true, Target{Scheme: MQTT, Host: "broker:1883"}, false},
		{"tcp://broker:1884", false, Target{Scheme: MQTT, Host: "broker:1884"}, false},
		{"mqtts://broker", false, Target{Scheme: MQTTS, Host: "broker:8883"}, false},
		{"ssl://broker:9", false, Target{Scheme: MQTTS, Host: "broker:9"}, false},
		{"ws://broker:8083", false, Target{Scheme: WS, Host: "broker:8083", Path: "/"}, false},
		{"wss://broker/mqtt", false, Target{Scheme: WSS, Host: "broker:443", Path: "/mqtt"}, false},
		{"MQTTS://[::1]:8883", false, Target{Scheme: MQTTS, Host: "[::1]:8883"}, false},
		{"broker", false, Target{}, true},
		{"http://broker:80", false, Target{}, true},
		{"mqtt://:1883", false, Target{}, true},
		{"mqtt://user:pw@broker:1883", false, Target{}, true},
		{"mqtt://broker:1883/x", false, Target{}, true},
	} {
		got, err := Parse(tc.in, tc.tlsBare)
		if tc.bad {
			if !errors.Is(err, ErrAddress) {
				t.Errorf("Parse(%q) = %+v, %v; want ErrAddress", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q, %v) = %+v, %v; want %+v", tc.in, tc.tlsBare, got, err, tc.want)
		}
	}
}
