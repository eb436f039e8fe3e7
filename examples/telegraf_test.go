package examples

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/pelletier/go-toml/v2"

	"github.com/arina-dev/arina/internal/arinatest"
)

// TelegrafEnv names the telegraf binary TestTelegraf_Run runs; unset, the test looks
// in examples/telegraf/.runtime (where examples/telegraf/install builds it), then on PATH.
const TelegrafEnv = "ARINA_TELEGRAF"

// telegrafConfig is what examples/telegraf/arina.conf may say: the options of
// Telegraf's mqtt_consumer input (as its sample.conf names them) and of the value
// parser that the example uses or shows commented out, and the file output. The file
// is decoded strictly, so a misspelt or unknown key fails the test as it would fail
// Telegraf ("configuration specified the fields [...], but they weren't used").
type telegrafConfig struct {
	Inputs struct {
		MQTTConsumer []struct {
			Servers           []string `toml:"servers"`
			Topics            []string `toml:"topics"`
			QoS               int      `toml:"qos"`
			ClientID          string   `toml:"client_id"`
			Username          string   `toml:"username"`
			Password          string   `toml:"password"`
			TLSCA             string   `toml:"tls_ca"`
			TopicTag          *string  `toml:"topic_tag"`
			DataFormat        string   `toml:"data_format"`
			DataType          string   `toml:"data_type"`
			NameOverride      string   `toml:"name_override"`
			PersistentSession bool     `toml:"persistent_session"`
			TopicParsing      []struct {
				Topic       string `toml:"topic"`
				Measurement string `toml:"measurement"`
				Tags        string `toml:"tags"`
				Fields      string `toml:"fields"`
			} `toml:"topic_parsing"`
		} `toml:"mqtt_consumer"`
	} `toml:"inputs"`
	Outputs struct {
		File []struct {
			Files      []string `toml:"files"`
			DataFormat string   `toml:"data_format"`
		} `toml:"file"`
	} `toml:"outputs"`
}

const telegrafConf = "telegraf/arina.conf"

// TestTelegraf_Config: examples/telegraf/arina.conf is valid TOML with only keys
// Telegraf knows, and what it says, applied as Telegraf applies it (topic_parsing as
// in mqtt_consumer's topic_parser.go, the value parser's integer type), turns the
// count messages of a real daemon, received by a real client subscribed to the
// config's topics at its QoS, into arina_count{content, reaction} = the count.
// It needs no Telegraf; TestTelegraf_Run runs the real one.
func TestTelegraf_Config(t *testing.T) {
	raw, err := os.ReadFile(telegrafConf)
	if err != nil {
		t.Fatal(err)
	}
	// Telegraf replaces ${VAR} before parsing; the example only has them in comments.
	var cfg telegrafConfig
	dec := toml.NewDecoder(bytes.NewReader(raw)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			t.Fatalf("%s: keys Telegraf does not know:\n%s", telegrafConf, strict.String())
		}
		t.Fatalf("%s: %v", telegrafConf, err)
	}
	if len(cfg.Inputs.MQTTConsumer) != 1 {
		t.Fatalf("%d mqtt_consumer inputs, want 1", len(cfg.Inputs.MQTTConsumer))
	}
	in := cfg.Inputs.MQTTConsumer[0]
	switch {
	case len(in.Servers) != 1 || in.Servers[0] != "tcp://127.0.0.1:1883":
		t.Fatalf("servers = %q, want Arina's default listener tcp://127.0.0.1:1883", in.Servers)
	case len(in.Topics) != 1 || len(in.TopicParsing) != 1 || in.TopicParsing[0].Topic != in.Topics[0]:
		t.Fatalf("topics %q and topic_parsing %+v: want one topic, parsed", in.Topics, in.TopicParsing)
	case in.QoS != 1:
		t.Fatalf("qos = %d, want 1", in.QoS)
	case in.DataFormat != "value" || in.DataType != "integer":
		t.Fatalf("data_format %q, data_type %q: want value, integer (the payload is a bare count)", in.DataFormat, in.DataType)
	case in.TopicTag == nil || *in.TopicTag != "":
		t.Fatal(`topic_tag should be "" (the topic becomes the content and reaction tags)`)
	}
	parse := in.TopicParsing[0]
	pattern := strings.Split(parse.Topic, "/")
	tagNames := strings.Split(parse.Tags, "/")
	if len(tagNames) != len(pattern) {
		t.Fatalf("topic_parsing tags %q has %d levels, the topic %d: Telegraf refuses that", parse.Tags, len(tagNames), len(pattern))
	}

	d := arinatest.Start(t, withCounts)
	opts := pahomqtt.NewClientOptions().AddBroker("tcp://" + d.MQTTAddr).SetClientID(in.ClientID).
		SetAutoReconnect(false).SetConnectRetry(false)
	c := pahomqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting: %v", tok.Error())
	}
	defer c.Disconnect(100)
	type metric struct {
		name, tags string
		value      int64
	}
	got := make(chan metric, 100)
	bad := make(chan string, 100)
	tok := c.Subscribe(in.Topics[0], byte(in.QoS), func(_ pahomqtt.Client, m pahomqtt.Message) {
		// topic_parsing: a topic of another length is left alone; else each named level
		// of tags becomes a tag.
		levels := strings.Split(m.Topic(), "/")
		if len(levels) != len(pattern) {
			bad <- fmt.Sprintf("topic %s does not match %s", m.Topic(), parse.Topic)
			return
		}
		var tags []string
		for i, name := range tagNames {
			if name != "_" && name != "" {
				tags = append(tags, name+"="+levels[i])
			}
		}
		// The value parser with data_type integer.
		v, err := strconv.ParseInt(strings.TrimSpace(string(m.Payload())), 10, 64)
		if err != nil {
			bad <- fmt.Sprintf("payload %q of %s is no integer: %v", m.Payload(), m.Topic(), err)
			return
		}
		got <- metric{in.NameOverride, strings.Join(tags, ","), v}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing to %s: %v", in.Topics[0], tok.Error())
	}
	mosquittoPub(t, d.MQTTAddr, "kitchen/Stew/fire", "add sam")
	mosquittoPub(t, d.MQTTAddr, "kitchen/Stew/fire", "add ann")
	mosquittoPub(t, d.MQTTAddr, "kitchen/Soup/yum", "add kim")
	want := map[metric]bool{
		{"arina_count", "content=Stew,reaction=fire", 2}: false,
		{"arina_count", "content=Soup,reaction=yum", 1}:  false,
	}
	deadline := time.After(10 * time.Second)
	for left := len(want); left > 0; {
		select {
		case m := <-got:
			if seen, ok := want[m]; ok && !seen {
				want[m] = true
				left--
			}
		case b := <-bad:
			t.Fatal(b)
		case <-deadline:
			t.Fatalf("metrics seen: %v", want)
		}
	}
}

// TestTelegraf_Run runs the real Telegraf (examples/telegraf/install builds it; it is
// not in Debian) with examples/telegraf/arina.conf, its server pointed at a daemon,
// and checks the metrics it prints: the measurement arina_count with the tags content
// and reaction and the count as an integer field.
func TestTelegraf_Run(t *testing.T) {
	bin := os.Getenv(TelegrafEnv)
	if bin == "" {
		bin = filepath.Join("telegraf", ".runtime", "telegraf")
		if _, err := os.Stat(bin); err != nil {
			if bin, err = exec.LookPath("telegraf"); err != nil {
				missing(t, fmt.Sprintf("telegraf not found in telegraf/.runtime nor on PATH (run examples/telegraf/install, or set %s to a telegraf binary)", TelegrafEnv))
			}
		}
	}
	raw, err := os.ReadFile(telegrafConf)
	if err != nil {
		t.Fatal(err)
	}
	d := arinatest.Start(t, withCounts)
	conf := filepath.Join(t.TempDir(), "arina.conf")
	if err := os.WriteFile(conf, bytes.ReplaceAll(raw, []byte("tcp://127.0.0.1:1883"), []byte("tcp://"+d.MQTTAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	mosquittoPub(t, d.MQTTAddr, "kitchen/Stew/fire", "add sam")
	mosquittoPub(t, d.MQTTAddr, "kitchen/Stew/fire", "add ann")
	mosquittoPub(t, d.MQTTAddr, "kitchen/Soup/yum", "add kim")
	// The count topics are retained: Telegraf gets the current counts when it connects.
	arinatest.WaitFor(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "--config", conf, "--test", "--test-wait", "3").CombinedOutput()
		if err != nil {
			t.Fatalf("telegraf --test: %v\n%s", err, out)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^> arina_count,content=Stew,(host=[^,]*,)?reaction=fire value=2i \d+$`),
			regexp.MustCompile(`(?m)^> arina_count,content=Soup,(host=[^,]*,)?reaction=yum value=1i \d+$`),
		} {
			if !want.Match(out) {
				return fmt.Errorf("telegraf printed no line matching %s:\n%s", want, out)
			}
		}
		return nil
	})
}
