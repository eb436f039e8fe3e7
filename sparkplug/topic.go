package sparkplug

import (
	"strings"

	"github.com/arina-dev/arina/ingest"
)

// Namespace is the first topic level of Sparkplug B.
const Namespace = "spBv1.0"

// Message types: the third level of a Sparkplug B topic.
const (
	NBIRTH = "NBIRTH"
	NDEATH = "NDEATH"
	DBIRTH = "DBIRTH"
	DDEATH = "DDEATH"
	NDATA  = "NDATA"
	DDATA  = "DDATA"
	NCMD   = "NCMD"
	DCMD   = "DCMD"
	STATE  = "STATE"
)

// Topic is a parsed Sparkplug B topic.
type Topic struct {
	Group  string // group id; for STATE, empty
	Type   string // NBIRTH, NDATA, ..., STATE
	Edge   string // edge node id; for STATE, the host id
	Device string // device id; "" for node messages
}

// IsTopic reports whether topic is in the Sparkplug B namespace (spBv1.0/...).
func IsTopic(topic string) bool {
	return len(topic) > len(Namespace) && topic[len(Namespace)] == '/' && strings.HasPrefix(topic, Namespace)
}

// ParseTopic parses spBv1.0/<group>/<type>/<edge>[/<device>] and spBv1.0/STATE/<host>.
// The ids must be valid identifiers (ingest.CheckID): they become content and user ids.
func ParseTopic(topic string) (Topic, error) {
	t, err := splitTopic(topic)
	if err != nil {
		return Topic{}, err
	}
	if t.Type == STATE {
		return t, nil
	}
	if err := t.checkNode(); err != nil {
		return Topic{}, err
	}
	if err := t.checkDevice(); err != nil {
		return Topic{}, err
	}
	return t, nil
}

// splitTopic parses the levels of a topic and checks its shape, not its ids.
func splitTopic(topic string) (Topic, error) {
	bad := func(msg string) (Topic, error) {
		return Topic{}, &ingest.Error{Code: ingest.CodeBadPayload, Msg: "sparkplug topic " + truncate(topic) + ": " + msg}
	}
	if !IsTopic(topic) {
		return bad("not under " + Namespace + "/")
	}
	rest := topic[len(Namespace)+1:]
	var t Topic
	var ok bool
	if t.Group, rest, ok = strings.Cut(rest, "/"); !ok {
		return bad("want " + Namespace + "/<group>/<type>/<edge_node>[/<device>]")
	}
	if t.Group == STATE && strings.IndexByte(rest, '/') < 0 {
		return Topic{Type: STATE, Edge: rest}, nil
	}
	if t.Type, rest, ok = strings.Cut(rest, "/"); !ok {
		return bad("want " + Namespace + "/<group>/<type>/<edge_node>[/<device>]")
	}
	t.Edge, t.Device, ok = strings.Cut(rest, "/")
	if strings.IndexByte(t.Device, '/') >= 0 {
		return bad("want " + Namespace + "/<group>/<type>/<edge_node>[/<device>]")
	}
	if ok && t.Device == "" {
		return bad("empty device id")
	}
	switch t.Type {
	case NBIRTH, NDEATH, NDATA, NCMD:
		if t.Device != "" {
			return bad(t.Type + " is a node message and takes no device id")
		}
	case DBIRTH, DDEATH, DDATA, DCMD:
		if t.Device == "" {
			return bad(t.Type + " needs a device id")
		}
	default:
		return bad("unknown message type " + truncate(t.Type))
	}
	return t, nil
}

// checkNode checks the group and edge node ids.
func (t Topic) checkNode() error {
	if err := ingest.CheckID("group_id", t.Group, ingest.MaxIDLen); err != nil {
		return err
	}
	return ingest.CheckID("edge_node_id", t.Edge, ingest.MaxIDLen)
}

// checkDevice checks the device id, if any.
func (t Topic) checkDevice() error {
	if t.Device == "" {
		return nil
	}
	return ingest.CheckID("device_id", t.Device, ingest.MaxIDLen)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
