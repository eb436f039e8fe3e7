package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/spf13/cobra"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/config"
	"github.com/arina-dev/arina/store"
)

func newPubCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pub --content ID --reaction TYPE --user ID [--remove]",
		Short: "Publish one add (or remove) event over MQTT 5 and wait for its acknowledgement",
		Long: `Pub publishes one event to <mqtt.topic_prefix>/<content>/<reaction> with an MQTT 5
client. The ids are checked as the daemon checks them (1-256 bytes, reaction 1-64, no
control characters, none of / + #) before connecting: a bad one is an error at once.
At QoS 1 (the default) it waits for the PUBACK, sent once the event is applied, and
prints "acknowledged"; a PUBACK with a failure reason code (e.g. 0x99 payload format
invalid, 0x97 quota exceeded) is an error naming the code, and exits 1. At QoS 0 there is
no acknowledgement: it prints "sent (QoS 0, not acknowledged)" once the message is written.`,
		Example: `  arina pub --content Stew --reaction fire --user Sam
  arina pub --content Stew --reaction fire --user Sam --remove
  arina pub -u sensor --password-file ~/.config/arina/password --broker mqtts://arina.example:8883 --cafile ca.pem \
      --content Stew --reaction fire --user Sam
  arina pub -u sensor --broker wss://arina.example/mqtt --content Stew --reaction fire --user Sam   # password from $ARINA_PASSWORD`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	content := fs.String("content", "", "content id (required)")
	reaction := fs.String("reaction", "", "reaction type (required)")
	user := fs.String("user", "", "user id (required)")
	remove := fs.Bool("remove", false, "publish a remove instead of an add")
	login := addMQTTFlags(fs, addTLSFlags(fs, false), "MQTT client identifier (default: arina-pub-<host>-<pid>-<random>)")
	qos := fs.Int("qos", 1, "QoS level, 0 or 1")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the broker")
	for _, f := range []string{"content", "reaction", "user"} {
		_ = cmd.MarkFlagRequired(f)
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(cmd.Flags(), getenv)
		if err != nil {
			return err
		}
		if *qos != 0 && *qos != 1 {
			return fmt.Errorf("--qos %d: want 0 or 1", *qos)
		}
		action := "add"
		ev := ingest.Event{Op: store.Op{ContentID: *content, ReactionType: *reaction, UserID: *user, Action: store.Add}}
		if *remove {
			action, ev.Action = "remove", store.Remove
		}
		// The daemon's own check, before connecting: an id with '/' would publish to a
		// topic that is not an ingest topic (acknowledged, never applied), one with '#' or
		// '+' to a topic the broker refuses by closing the connection.
		if err := ev.Validate(); err != nil {
			return fmt.Errorf("not published: %w", pubFlagError(err, ev))
		}
		l, err := login.resolve(cfg, getenv, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		clientID := login.clientID
		if clientID == "" {
			host, _ := os.Hostname()
			clientID = fmt.Sprintf("arina-pub-%s-%d-%08x", host, os.Getpid(), rand.Uint32())
		}
		payload, _ := json.Marshal(map[string]string{"user_id": *user, "action": action})
		topic := cfg.MQTT.TopicPrefix + "/" + *content + "/" + *reaction
		ctx, cancel := context.WithTimeout(cmd.Context(), *timeout)
		defer cancel()
		if err := publish(ctx, l, clientID, topic, payload, byte(*qos)); err != nil {
			return err
		}
		if *qos == 0 {
			fmt.Fprintf(stdout, "%s %s on %s: sent (QoS 0, not acknowledged)\n", action, *user, topic)
			return nil
		}
		fmt.Fprintf(stdout, "%s %s on %s: acknowledged\n", action, *user, topic)
		return nil
	}
	return cmd
}

// pubFlagError names the flag and value of an ingest id error:
// `--content "St/ew": contains '/', which MQTT topics cannot carry`.
func pubFlagError(err error, ev ingest.Event) error {
	var ie *ingest.Error
	if !errors.As(err, &ie) {
		return err
	}
	var flag, value string
	switch ie.Field {
	case "content_id":
		flag, value = "--content", ev.ContentID
	case "reaction_type":
		flag, value = "--reaction", ev.ReactionType
	case "user_id":
		flag, value = "--user", ev.UserID
	default:
		return err
	}
	return fmt.Errorf("%s %q: %s", flag, value, ie.Msg)
}

// publish sends one message with an MQTT 5 client and returns an error naming the
// reason code if the broker refused it.
func publish(ctx context.Context, l *mqttLogin, clientID, topic string, payload []byte, qos byte) error {
	// A connection the broker closes (a session taken over by the same client id, a
	// kick) ends the wait for the PUBACK at once, with the broker's reason.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c, err := l.connect5(ctx, paho.ClientConfig{
		OnServerDisconnect: func(d *paho.Disconnect) { cancel(disconnectError(d)) },
		OnClientError:      func(err error) { cancel(fmt.Errorf("the connection failed: %w", err)) },
	}, clientID)
	if err != nil {
		return err
	}
	defer c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("publishing to %s: refused with reason %#x (%s)", topic, resp.ReasonCode, resp.Properties.ReasonString)
		}
		cause := context.Cause(ctx)
		switch {
		case errors.Is(cause, context.DeadlineExceeded):
			return fmt.Errorf("publishing to %s: no PUBACK within --timeout", topic)
		case cause != nil && !errors.Is(cause, context.Canceled):
			return fmt.Errorf("publishing to %s: %w", topic, cause)
		}
		return fmt.Errorf("publishing to %s: %w", topic, err)
	}
	return nil
}

// disconnectError explains a DISCONNECT from the broker.
func disconnectError(d *paho.Disconnect) error {
	reason := ""
	if d.Properties != nil {
		reason = d.Properties.ReasonString
	}
	if d.ReasonCode == 0x8e {
		reason = "session taken over: another client connected with the same client id (--client-id)"
	}
	if reason == "" {
		return fmt.Errorf("the broker closed the connection with reason %#x", d.ReasonCode)
	}
	return fmt.Errorf("the broker closed the connection with reason %#x (%s)", d.ReasonCode, reason)
}

func newCountsCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "counts CONTENT",
		Short:   "Print the reaction counts of a content, from the HTTP API",
		Example: "  arina counts Stew\n  arina counts --server https://arina.example:4000 --cafile ca.pem Stew   # token from $ARINA_TOKEN",
		Args:    cobra.ExactArgs(1),
	}
	fs := cmd.Flags()
	server := fs.String("server", "", "HTTP API host:port or URL, http:// or https:// (default: from http.listen)")
	api := addAPIFlags(fs, addTLSFlags(fs, false), true)
	asJSON := fs.Bool("json", false, "print the API's JSON as it is")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the API")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := config.Load(cmd.Flags(), getenv)
		if err != nil {
			return err
		}
		ac, err := api.client(*server, cfg, getenv, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), *timeout)
		defer cancel()
		resp, body, err := ac.get(ctx, "/api/v1/reaction/reaction_counts/"+url.PathEscape(args[0]), 16<<20)
		if err != nil {
			return fmt.Errorf("querying counts: %w", err)
		}
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return fmt.Errorf("content %q: %w", args[0], errNotFound)
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("querying counts: %w", ac.statusError(resp, body))
		}
		if *asJSON {
			_, err := stdout.Write(body)
			return err
		}
		var counts struct {
			ReactionCount map[string]int64 `json:"reaction_count"`
		}
		if err := json.Unmarshal(body, &counts); err != nil {
			return fmt.Errorf("decoding counts: %w", err)
		}
		keys := slices.Sorted(maps.Keys(counts.ReactionCount))
		for _, k := range keys {
			fmt.Fprintf(stdout, "%s\t%d\n", k, counts.ReactionCount[k])
		}
		return nil
	}
	return cmd
}

var errNotFound = errors.New("not found: no reaction was ever added to it")
