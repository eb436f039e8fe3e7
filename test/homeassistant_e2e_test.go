package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
)

func withHomeAssistant(o *daemon.Options) {
	o.MQTT.HomeAssistant = &broker.HomeAssistant{NodeID: "line 1"}
	o.Build.Version = "v9.9.9"
}

// haSensorKeys is Home Assistant's MQTT sensor discovery schema
// (https://www.home-assistant.io/integrations/sensor.mqtt/, "Configuration Variables"):
// every key a config may carry, with the JSON type it must have. Keys outside it are
// refused by Home Assistant's schema ("extra keys not allowed").
var haSensorKeys = map[string]string{
	"availability": "array", "availability_mode": "string", "availability_template": "string",
	"availability_topic": "string", "default_entity_id": "string", "device": "object",
	"device_class": "string", "enabled_by_default": "bool", "encoding": "string",
	"entity_category": "string", "entity_picture": "string", "expire_after": "number",
	"force_update": "bool", "icon": "string", "json_attributes_template": "string",
	"json_attributes_topic": "string", "last_reset_value_template": "string", "name": "string",
	"object_id": "string", "options": "array", "origin": "object", "payload_available": "string",
	"payload_not_available": "string", "platform": "string", "qos": "number",
	"state_class": "string", "state_topic": "string", "suggested_display_precision": "number",
	"unique_id": "string", "unit_of_measurement": "string", "value_template": "string",
}

// haDeviceKeys is the schema of the device map (identifiers: a string or a list).
var haDeviceKeys = map[string]string{
	"configuration_url": "string", "connections": "array", "hw_version": "string",
	"identifiers": "array", "manufacturer": "string", "model": "string", "model_id": "string",
	"name": "string", "serial_number": "string", "suggested_area": "string",
	"sw_version": "string", "via_device": "string",
}

// haOriginKeys is the schema of the origin map; name is required.
var haOriginKeys = map[string]string{"name": "string", "sw_version": "string", "support_url": "string"}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// checkSchema reports the keys of m outside schema or of the wrong type, and the
// required keys missing.
func checkSchema(t *testing.T, what string, m map[string]any, schema map[string]string, required ...string) {
	t.Helper()
	for k, v := range m {
		want, ok := schema[k]
		if !ok {
			t.Errorf("%s: key %q is not in Home Assistant's schema", what, k)
		} else if got := jsonType(v); got != want {
			t.Errorf("%s: %q is a %s, want a %s", what, k, got, want)
		}
	}
	for _, k := range required {
		if s, ok := m[k].(string); !ok || s == "" {
			t.Errorf("%s: required %q missing or empty", what, k)
		}
	}
}

var haIDChars = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// checkHAConfig checks a discovery payload against the schema and returns it decoded.
func checkHAConfig(t *testing.T, payload string) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal([]byte(payload), &cfg); err != nil {
		t.Fatalf("config is not JSON: %v: %s", err, payload)
	}
	checkSchema(t, "config", cfg, haSensorKeys, "state_topic", "unique_id", "name", "availability_topic")
	dev, _ := cfg["device"].(map[string]any)
	checkSchema(t, "device", dev, haDeviceKeys, "name")
	if ids, _ := dev["identifiers"].([]any); len(ids) == 0 {
		t.Errorf("device without identifiers: %v", dev)
	}
	origin, _ := cfg["origin"].(map[string]any)
	checkSchema(t, "origin", origin, haOriginKeys, "name")
	if sc, ok := cfg["state_class"]; ok && sc != "measurement" && sc != "total" && sc != "total_increasing" {
		t.Errorf("state_class %v", sc)
	}
	if cfg["availability_topic"] != broker.StatusTopic || cfg["payload_available"] != "online" || cfg["payload_not_available"] != "offline" {
		t.Errorf("availability: %v %v %v", cfg["availability_topic"], cfg["payload_available"], cfg["payload_not_available"])
	}
	return cfg
}

// collect subscribes c to filter and sends "topic payload" lines to the returned channel.
func collect(t *testing.T, c pahomqtt.Client, filter string) chan string {
	t.Helper()
	got := make(chan string, 100)
	if tok := c.Subscribe(filter, 1, func(_ pahomqtt.Client, m pahomqtt.Message) {
		got <- m.Topic() + " " + string(m.Payload())
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return got
}

// next returns the next message on got whose topic is topic.
func next(t *testing.T, got chan string, topic string) string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-got:
			if tp, p, _ := strings.Cut(m, " "); tp == topic {
				return p
			}
		case <-deadline:
			t.Fatalf("no message on %s", topic)
		}
	}
}

// TestHomeAssistant_Discovery: with discovery on, arina/status is "online" (retained),
// and the first event of a (content, reaction) brings a retained sensor config on
// homeassistant/sensor/arina_<content>_<reaction>/config that passes Home Assistant's
// sensor schema, whose state topic carries the count; later changes do not republish
// it; ids with other characters map to [a-zA-Z0-9_-] and stay apart.
func TestHomeAssistant_Discovery(t *testing.T) {
	d := arinatest.Start(t, withCounts, withHomeAssistant)
	sub := MustConnect311(t, d.MQTTAddr, "home-assistant")
	status := collect(t, sub, broker.StatusTopic)
	if s := next(t, status, broker.StatusTopic); s != "online" {
		t.Fatalf("arina/status = %q, want online", s)
	}
	configs := collect(t, sub, "homeassistant/#")
	pub := MustConnect311(t, d.MQTTAddr, "badges")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")

	const topic = "homeassistant/sensor/arina_Stew_fire/config"
	cfg := checkHAConfig(t, next(t, configs, topic))
	if cfg["state_topic"] != "arina/counts/Stew/fire" || cfg["value_template"] != nil {
		t.Fatalf("state_topic %v, value_template %v: want the per-reaction count topic, no template", cfg["state_topic"], cfg["value_template"])
	}
	dev := cfg["device"].(map[string]any)
	if dev["name"] != "arina line 1" || dev["sw_version"] != "v9.9.9" || !strings.Contains(cfg["unique_id"].(string), "line_1") {
		t.Errorf("device %v, unique_id %v: want the node's", dev, cfg["unique_id"])
	}
	// The state topic has the count, a bare number Home Assistant reads as the state.
	state := collect(t, sub, cfg["state_topic"].(string))
	if s := next(t, state, "arina/counts/Stew/fire"); s != "1" {
		t.Fatalf("state = %q, want 1", s)
	}

	// More changes: the state follows, the config is not published again (a second
	// config would have come before the state: the count goroutine publishes in order).
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add ann")
	if s := next(t, state, "arina/counts/Stew/fire"); s != "2" {
		t.Fatalf("state = %q, want 2", s)
	}
	select {
	case m := <-configs:
		t.Fatalf("config published again: %s", m)
	default:
	}

	// Other characters: mapped and told apart by a hash of the pair.
	MustPublish(t, pub, "kitchen/Crème brûlée/on_fire", 1, "add sam")
	MustPublish(t, pub, "kitchen/Crème_brûlée/on fire", 1, "add sam")
	seen := map[string]string{}
	for len(seen) < 2 {
		select {
		case m := <-configs:
			tp, p, _ := strings.Cut(m, " ")
			levels := strings.Split(tp, "/")
			if len(levels) != 4 || levels[0] != "homeassistant" || levels[1] != "sensor" || levels[3] != "config" || !haIDChars.MatchString(levels[2]) {
				t.Fatalf("discovery topic %q: want homeassistant/sensor/<[a-zA-Z0-9_-]+>/config", tp)
			}
			c := checkHAConfig(t, p)
			seen[tp] = c["state_topic"].(string)
		case <-time.After(5 * time.Second):
			t.Fatalf("configs: %v, want two", seen)
		}
	}
	var states []string
	for _, s := range seen {
		states = append(states, s)
	}
	if !(strings.Contains(strings.Join(states, ","), "arina/counts/Crème brûlée/on_fire") &&
		strings.Contains(strings.Join(states, ","), "arina/counts/Crème_brûlée/on fire")) {
		t.Fatalf("state topics %q", states)
	}

	// A non-Go client arriving later gets the config retained.
	bin := testutil.NeedProgram(t, "mosquitto_sub", "mosquitto-clients")
	host, port, _ := strings.Cut(d.MQTTAddr, ":")
	out, err := exec.Command(bin, "-h", host, "-p", port, "-t", topic, "-C", "1", "-W", "5").Output()
	if err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	checkHAConfig(t, strings.TrimSpace(string(out)))
}

// TestHomeAssistant_JSONStateWithoutPerReactionTopics: with the per-reaction topics
// off, the config points at the JSON count topic with a value_template.
func TestHomeAssistant_JSONStateWithoutPerReactionTopics(t *testing.T) {
	d := arinatest.Start(t, withCounts, withHomeAssistant, func(o *daemon.Options) { o.MQTT.NoReactionCountTopics = true })
	sub := MustConnect311(t, d.MQTTAddr, "home-assistant")
	configs := collect(t, sub, "homeassistant/#")
	MustPublish(t, MustConnect311(t, d.MQTTAddr, "badges"), "kitchen/Stew/fire", 1, "add sam")
	cfg := checkHAConfig(t, next(t, configs, "homeassistant/sensor/arina_Stew_fire/config"))
	if cfg["state_topic"] != "arina/counts/Stew" || cfg["value_template"] != `{{ value_json.reaction_count["fire"] }}` {
		t.Fatalf("state_topic %v, value_template %v", cfg["state_topic"], cfg["value_template"])
	}
}

// TestHomeAssistant_AtStart: a restarted arina publishes the configs of what its
// durable store holds, without waiting for a change.
func TestHomeAssistant_AtStart(t *testing.T) {
	dir := t.TempDir()
	d := arinatest.Start(t, durable(dir, store.DurabilitySync), withCounts)
	MustPublish(t, MustConnect311(t, d.MQTTAddr, "p1"), "kitchen/Soup/yum", 1, "add sam")
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	d2 := arinatest.Start(t, durable(dir, store.DurabilitySync), withCounts, withHomeAssistant)
	bin := testutil.NeedProgram(t, "mosquitto_sub", "mosquitto-clients")
	host, port, _ := strings.Cut(d2.MQTTAddr, ":")
	testutil.WaitFor(t, 5*time.Second, func() error {
		out, err := exec.Command(bin, "-h", host, "-p", port, "-t", "homeassistant/sensor/arina_Soup_yum/config", "-C", "1", "-W", "1").Output()
		if err != nil {
			return fmt.Errorf("mosquitto_sub: %v", err)
		}
		checkHAConfig(t, strings.TrimSpace(string(out)))
		return nil
	})
}

// TestHomeAssistant_OfflineAtShutdown: a subscriber of arina/status receives "offline"
// as arina shuts down, before the broker disconnects it.
func TestHomeAssistant_OfflineAtShutdown(t *testing.T) {
	d := arinatest.Start(t, withCounts, withHomeAssistant)
	sub := MustConnect311(t, d.MQTTAddr, "home-assistant")
	// QoS 0, as Home Assistant subscribes to availability by default: nothing but the
	// broker's own order makes it arrive.
	status := make(chan string, 10)
	if tok := sub.Subscribe(broker.StatusTopic, 0, func(_ pahomqtt.Client, m pahomqtt.Message) { status <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case s := <-status:
		if s != "online" {
			t.Fatalf("status %q, want online", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained online status")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-status:
		if s != "offline" {
			t.Fatalf("status at shutdown %q, want offline", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no offline status at shutdown")
	}
}
