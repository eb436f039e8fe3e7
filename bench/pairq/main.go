// Command pairq sends paced count queries to two HTTP servers in pairs: each tick one
// query to each, back to back (the order alternating), so that both see the same
// moment of a shared, noisy machine; then prints each server's latency percentiles.
// bench/http-floor uses it (HTTP_FLOOR_PAIRED=1) to compare arina with a constant
// server under one ingest run without the drift between consecutive windows.
//
//	pairq -a http://127.0.0.1:4000 -b http://127.0.0.1:4001 [-rate 2000] [-workers 8] [-duration 8s]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	pacing "golang.org/x/time/rate"
)

func main() {
	a := flag.String("a", "", "first server's base URL")
	b := flag.String("b", "", "second server's base URL")
	rate := flag.Float64("rate", 2000, "pairs per second over all workers")
	workers := flag.Int("workers", 8, "concurrent workers, each with a keep-alive connection to each server")
	duration := flag.Duration("duration", 8*time.Second, "how long")
	contents := flag.Int("contents", 1000, "read bench-c0..bench-c<contents-1> in turn")
	flag.Parse()
	if *a == "" || *b == "" {
		fmt.Fprintln(os.Stderr, "pairq: -a and -b are needed")
		os.Exit(2)
	}
	bases := []string{*a, *b}
	clients := make([]*http.Client, 2)
	for i := range clients {
		clients[i] = &http.Client{Timeout: 10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: *workers, MaxConnsPerHost: *workers}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	pace := pacing.NewLimiter(pacing.Limit(*rate), 1)
	var mu sync.Mutex
	lat := [2][]time.Duration{}
	errs := [2]int{}
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Go(func() {
			for i := w; ; i += *workers {
				if pace.Wait(ctx) != nil {
					return
				}
				for k := range 2 {
					s := (i + k) % 2 // alternate which goes first
					url := fmt.Sprintf("%s/api/v1/reaction/reaction_counts/bench-c%d", bases[s], i%*contents)
					t0 := time.Now()
					resp, err := clients[s].Get(url)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					d := time.Since(t0)
					mu.Lock()
					if err != nil || (resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound) {
						errs[s]++
					} else {
						lat[s] = append(lat[s], d)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	type out struct {
		N      int     `json:"n"`
		Errors int     `json:"errors"`
		P50    float64 `json:"p50_ms"`
		P99    float64 `json:"p99_ms"`
		P999   float64 `json:"p999_ms"`
	}
	var res [2]out
	for s := range 2 {
		l := lat[s]
		slices.Sort(l)
		q := func(p float64) float64 {
			if len(l) == 0 {
				return 0
			}
			return float64(l[int(p*float64(len(l)-1))].Microseconds()) / 1000
		}
		res[s] = out{N: len(l), Errors: errs[s], P50: q(.5), P99: q(.99), P999: q(.999)}
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]out{"a": res[0], "b": res[1]})
}
