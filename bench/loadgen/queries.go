package loadgen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pacing "golang.org/x/time/rate"
)

// QueryOptions configure RunQueries.
type QueryOptions struct {
	URL           string        // Arina HTTP API, http://host:port
	Workers       int           // concurrent readers, each with its own keep-alive connection; default 16
	Duration      time.Duration // how long to read; default 10s
	Contents      int           // read the counts of <ContentPrefix>c0..c<Contents-1>, in turn; default DefaultContents
	ContentPrefix string        // as in Options
	Token         string        // bearer token, if the API needs one
	TLS           *tls.Config   // for an https:// URL; nil: the system's CAs
	Rate          float64       // requests/s over all workers; 0: as fast as they can (closed loop)
}

// QueryReport is the outcome of RunQueries.
type QueryReport struct {
	URL       string   `json:"url"`
	Workers   int      `json:"workers"`
	DurationS float64  `json:"duration_s"`
	Requests  int64    `json:"requests"` // answered 200 or 404 (a content not seen yet)
	Errors    int64    `json:"errors"`   // transport errors and other statuses
	Rate      float64  `json:"rate"`     // requests per second
	Latency   *Latency `json:"latency,omitempty"`
}

// RunQueries reads counts over HTTP (the seed's count route) for Duration with Workers
// readers, as fast as they can or, with Rate, paced: the query side of a load test.
// Latency under a pace well below the maximum is what a dashboard sees; unpaced, the
// readers saturate the server and the latency is mostly their own queueing.
func RunQueries(ctx context.Context, o QueryOptions) (QueryReport, error) {
	if o.Workers <= 0 {
		o.Workers = DefaultPublishers
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Contents <= 0 {
		o.Contents = DefaultContents
	}
	o.URL = strings.TrimRight(o.URL, "/")
	if !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://") {
		return QueryReport{}, errors.New("loadgen: queries need an http:// or https:// URL")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: o.Workers, MaxConnsPerHost: o.Workers, TLSClientConfig: o.TLS}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var pace *pacing.Limiter
	if o.Rate > 0 {
		pace = pacing.NewLimiter(pacing.Limit(o.Rate), 1)
	}
	h := newHistogram()
	var requests, failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range o.Workers {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += o.Workers {
				if pace != nil && pace.Wait(ctx) != nil {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet,
					fmt.Sprintf("%s/api/v1/reaction/reaction_counts/%sc%d", o.URL, url.PathEscape(o.ContentPrefix), i%o.Contents), nil)
				if err != nil {
					failures.Add(1)
					return
				}
				if o.Token != "" {
					req.Header.Set("Authorization", "Bearer "+o.Token)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failures.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
					failures.Add(1)
					continue
				}
				h.record(time.Since(t0))
				requests.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	rep := QueryReport{URL: o.URL, Workers: o.Workers, DurationS: elapsed, Requests: requests.Load(),
		Errors: failures.Load(), Rate: float64(requests.Load()) / elapsed}
	if h.count() > 0 {
		rep.Latency = h.latency()
	}
	return rep, nil
}
