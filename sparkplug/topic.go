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
	bad := func(msg string) (Topic, error) {
		return Topic{}, &ingest.Error{Code: ingest.CodeBadPayload, Msg: "sparkplug topic " + truncate(topic) + ": " + msg}
	}
	if !IsTopic(topic) {
		return bad("not under " + Namespace + "/")
	}
	parts := strings.Split(topic[len(Namespace)+1:], "/")
	if len(parts) == 2 && parts[0] == STATE {
		return Topic{Type: STATE, Edge: parts[1]}, nil
	}
	if len(parts) < 3 || len(parts) > 4 {
		return bad("want " + Namespace + "/<group>/<type>/<edge_node>[/<device>]")
	}
	t := Topic{Group: parts[0], Type: parts[1], Edge: parts[2]}
	if len(parts) == 4 {
		t.Device = parts[3]
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
	if err := ingest.CheckID("group_id", t.Group, ingest.MaxIDLen); err != nil {
		return Topic{}, err
	}
	if err := ingest.CheckID("edge_node_id", t.Edge, ingest.MaxIDLen); err != nil {
		return Topic{}, err
	}
	if t.Device != "" {
		if err := ingest.CheckID("device_id", t.Device, ingest.MaxIDLen); err != nil {
			return Topic{}, err
		}
	}
	return t, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
