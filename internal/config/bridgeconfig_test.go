package config

import (
	"os"
	"testing"
)

// TestUpstreams_HostnameClientID: one config file serves every node when the client id
// names the host: each node keeps its own session upstream.
func TestUpstreams_HostnameClientID(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	ups, err := BridgeConfig{Upstreams: []UpstreamConfig{{Name: "f", URL: "tcp://x:1883", ClientID: "arina-{hostname}-f", Topics: []string{"k/{content}/{reaction}"}}}}.upstreams()
	if err != nil || len(ups) != 1 || ups[0].ClientID != "arina-"+host+"-f" {
		t.Fatalf("upstreams = %+v, %v; want client id arina-%s-f", ups, err, host)
	}
}
