package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/arina-dev/arina/internal/config"
)

func newWatchCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch [CONTENT...]",
		Short: "Follow counts live from the change stream (all contents, or those named)",
		Example: `  arina watch
  arina watch Stew Soup
  arina watch --server https://arina.example:4000 --cafile ca.pem   # token from $ARINA_TOKEN`,
	}
	fs := cmd.Flags()
	server := fs.String("server", "", "HTTP API host:port or URL, http:// or https:// (default: from http.listen)")
	api := addAPIFlags(fs, addTLSFlags(fs, false), true)
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the stream to open (then it is followed until interrupted)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := config.Load(cmd.Flags(), getenv)
		if err != nil {
			return err
		}
		ac, err := api.client(*server, cfg, getenv, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		q := url.Values{"content": args}
		return watch(cmd.Context(), ac, "/api/v1/stream?"+q.Encode(), *timeout, stdout)
	}
	return cmd
}

// watch prints the counts once the snapshot is in, then one line per change, until
// ctx ends or the stream does.
func watch(ctx context.Context, ac *apiClient, path string, timeout time.Duration, out io.Writer) error {
	// The stream has no deadline, but opening it does: a server that never answers
	// is an error after timeout, not a silent wait.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errSilent := fmt.Errorf("no answer within --timeout %v", timeout)
	silent := time.AfterFunc(timeout, func() { cancel(errSilent) })
	req, err := ac.request(ctx, path)
	if err != nil {
		return err
	}
	resp, err := ac.do(req)
	if !silent.Stop() && context.Cause(ctx) == errSilent {
		if err == nil {
			resp.Body.Close()
		}
		return fmt.Errorf("opening the change stream at %s: %w: is the address right, and reachable?", ac.base, errSilent)
	}
	if err != nil {
		return fmt.Errorf("opening the change stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("opening the change stream: %w", ac.statusError(resp, body))
	}
	counts := map[string]map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	var event string
	for sc.Scan() {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		switch event {
		case "snapshot":
			var s struct {
				ContentID     string           `json:"content_id"`
				ReactionCount map[string]int64 `json:"reaction_count"`
			}
			if json.Unmarshal([]byte(data), &s) == nil {
				counts[s.ContentID] = s.ReactionCount
			}
		case "ready":
			for _, c := range slices.Sorted(maps.Keys(counts)) {
				for _, r := range slices.Sorted(maps.Keys(counts[c])) {
					fmt.Fprintf(out, "%s\t%s\t%d\n", c, r, counts[c][r])
				}
			}
			fmt.Fprintln(out, "-- live --")
		case "change":
			var c struct {
				ContentID    string `json:"content_id"`
				ReactionType string `json:"reaction_type"`
				UserID       string `json:"user_id"`
				Action       string `json:"action"`
				Count        int64  `json:"count"`
				At           int64  `json:"at"`
			}
			if json.Unmarshal([]byte(data), &c) == nil {
				fmt.Fprintf(out, "%s\t%s\t%d\t%s %s at %s\n", c.ContentID, c.ReactionType, c.Count, c.Action, c.UserID,
					time.UnixMilli(c.At).Format("15:04:05.000"))
			}
		case "error":
			return fmt.Errorf("the stream ended: %s", data)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the change stream: %w", err)
	}
	return nil
}
