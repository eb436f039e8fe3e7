package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Home Assistant MQTT discovery defaults.
const (
	DefaultDiscoveryPrefix = "homeassistant"
	// StatusTopic is arina's availability topic: retained "online" while the broker
	// serves, "offline" published (retained) as it shuts down.
	StatusTopic = "arina/status"
)

// HomeAssistant configures Home Assistant MQTT discovery: a retained sensor config on
// <DiscoveryPrefix>/sensor/arina_<content>_<reaction>/config for each (content,
// reaction) the count topics publish, and the availability topic StatusTopic.
type HomeAssistant struct {
	DiscoveryPrefix string // default "homeassistant"
	NodeID          string // names the arina device; its characters are mapped like object ids
	SWVersion       string // the device's sw_version; "" leaves it out
}

// haConfig is the discovery payload of one sensor, the keys of Home Assistant's MQTT
// sensor (https://www.home-assistant.io/integrations/sensor.mqtt/).
type haConfig struct {
	Name              string   `json:"name"`
	UniqueID          string   `json:"unique_id"`
	StateTopic        string   `json:"state_topic"`
	ValueTemplate     string   `json:"value_template,omitempty"`
	StateClass        string   `json:"state_class"`
	Icon              string   `json:"icon"`
	AvailabilityTopic string   `json:"availability_topic"`
	PayloadAvailable  string   `json:"payload_available"`
	PayloadNotAvail   string   `json:"payload_not_available"`
	Device            haDevice `json:"device"`
	Origin            haOrigin `json:"origin"`
}

type haDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

type haOrigin struct {
	Name      string `json:"name"`
	SWVersion string `json:"sw_version,omitempty"`
}

// homeAssistant publishes the discovery configs. It runs on the count topics'
// goroutine; seen is its own.
type homeAssistant struct {
	c      *counts
	opts   HomeAssistant
	node   string              // NodeID mapped to [a-zA-Z0-9_-]
	seen   map[string]struct{} // content "\x00" reaction of the configs published
	device haDevice
}

func newHomeAssistant(c *counts, o HomeAssistant) *homeAssistant {
	if o.DiscoveryPrefix == "" {
		o.DiscoveryPrefix = DefaultDiscoveryPrefix
	}
	node := SafeTopicID(o.NodeID)
	return &homeAssistant{c: c, opts: o, node: node, seen: make(map[string]struct{}),
		device: haDevice{Identifiers: []string{"arina_" + node}, Name: "arina " + o.NodeID,
			Manufacturer: "Arina", Model: "arina", SWVersion: o.SWVersion}}
}

// SafeTopicID maps s onto the characters Home Assistant allows in a discovery topic's
// node and object ids, [a-zA-Z0-9_-]: any other byte becomes '_' and, when one did
// (or s is empty), an '_' and 8 hex digits of s's SHA-256 follow, so that ids that
// map alike stay apart.
func SafeTopicID(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !safeRune(r) }) {
		return s
	}
	return mapID(s) + "_" + shortHash(s)
}

func safeRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

func mapID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !safeRune(rune(c)) {
			b[i] = '_'
		}
	}
	return string(b)
}

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// ObjectID is the discovery object id of a (content, reaction): arina_<content>_<reaction>
// when both are made of [a-zA-Z0-9-] and the content has no '_' (then the pair can be
// read back), else with their other characters mapped to '_' and an '_' and 8 hex
// digits of a hash of the pair appended.
func ObjectID(contentID, reaction string) string {
	if contentID != "" && reaction != "" && !strings.ContainsFunc(contentID, func(r rune) bool { return !safeRune(r) || r == '_' }) &&
		!strings.ContainsFunc(reaction, func(r rune) bool { return !safeRune(r) }) {
		return "arina_" + contentID + "_" + reaction
	}
	return "arina_" + mapID(contentID) + "_" + mapID(reaction) + "_" + shortHash(contentID+"\x00"+reaction)
}

// configTopic is the discovery topic of a (content, reaction).
func (h *homeAssistant) configTopic(contentID, reaction string) string {
	return h.opts.DiscoveryPrefix + "/sensor/" + ObjectID(contentID, reaction) + "/config"
}

// reaction publishes the config of (content, reaction) the first time it is present,
// and clears it (an empty retained message) once it is gone.
func (h *homeAssistant) reaction(contentID, reaction string, present bool) {
	key := contentID + "\x00" + reaction
	if _, ok := h.seen[key]; ok == present {
		return
	}
	topic := h.configTopic(contentID, reaction)
	if !present {
		delete(h.seen, key)
		h.c.inject(topic, nil, packets.Properties{})
		return
	}
	cfg := haConfig{
		Name:              contentID + " " + reaction,
		UniqueID:          "arina_" + h.node + "_" + strings.TrimPrefix(ObjectID(contentID, reaction), "arina_"),
		StateClass:        "measurement",
		Icon:              "mdi:account-group",
		AvailabilityTopic: StatusTopic,
		PayloadAvailable:  "online",
		PayloadNotAvail:   "offline",
		Device:            h.device,
		Origin:            haOrigin{Name: "arina", SWVersion: h.opts.SWVersion},
	}
	if h.c.perReaction {
		cfg.StateTopic = h.c.prefix + "/" + contentID + "/" + reaction
	} else {
		cfg.StateTopic = h.c.prefix + "/" + contentID
		r, _ := json.Marshal(reaction) // a JSON string is a Jinja string literal
		cfg.ValueTemplate = "{{ value_json.reaction_count[" + string(r) + "] }}"
	}
	payload, err := json.Marshal(cfg)
	if err != nil {
		return
	}
	h.seen[key] = struct{}{}
	h.c.inject(topic, payload, packets.Properties{ContentType: "application/json", PayloadFormat: 1, PayloadFormatFlag: true})
}

// publishStatus sets the retained availability topic.
func (s *Server) publishStatus(status string) {
	s.counts.Load().inject(StatusTopic, []byte(status), packets.Properties{PayloadFormat: 1, PayloadFormatFlag: true})
}

// drainWrites waits, at most until timeout, for every client's queued packets to be
// written: what was just published reaches the subscribers before they are
// disconnected.
func (s *Server) drainWrites(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		pending := false
		for _, cl := range s.mochi.Clients.GetAll() {
			if !cl.Closed() && cl.PendingWrites() > 0 {
				pending = true
				break
			}
		}
		if !pending {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
