package test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
)

// TestHTTPLimits_Counted: the limits net/http enforces before any handler (header
// size, slow clients) are counted, and ordinary keep-alive traffic counts nothing.
func TestHTTPLimits_Counted(t *testing.T) {
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.HTTP.MaxHeaderBytes = 4096
		o.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
	})
	hits := func(limit string) float64 {
		return metric(t, d.HTTPURL, fmt.Sprintf(`arina_http_limit_hits_total{limit=%q}`, limit))
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for range 50 { // keep-alive requests, some with pauses: nothing to count
		resp, err := client.Get(d.HTTPURL + "/api/v1/contents")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if h, s := hits("header_size"), hits("slow_client"); h != 0 || s != 0 {
		t.Fatalf("ordinary requests counted: header_size %v, slow_client %v", h, s)
	}

	addr := strings.TrimPrefix(d.HTTPURL, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("p", 16<<10))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 431 {
		t.Fatalf("oversized header: %v %v", resp, err)
	}
	conn.Close()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if h := hits("header_size"); h != 1 {
			return fmt.Errorf("header_size %v, want 1", h)
		}
		return nil
	})

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprint(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // and nothing more
	testutil.WaitFor(t, 5*time.Second, func() error {
		if s := hits("slow_client"); s != 1 {
			return fmt.Errorf("slow_client %v, want 1", s)
		}
		return nil
	})
	if h := hits("header_size"); h != 1 {
		t.Errorf("header_size %v after the slow client, want 1", h)
	}
}
