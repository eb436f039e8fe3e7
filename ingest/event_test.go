package ingest_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// mustCode fails unless err is an *ingest.Error with code want (and field, when not
// empty), seen the same way through errors.As and ingest.CodeOf.
func mustCode(tb testing.TB, err error, want ingest.Code, field string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("err = nil, want code %q", want)
	}
	var e *ingest.Error
	if !errors.As(err, &e) {
		tb.Fatalf("err = %v (%T), want an *ingest.Error", err, err)
	}
	if got := ingest.CodeOf(err); got != want {
		tb.Fatalf("CodeOf(%v) = %q, want %q", err, got, want)
	}
	if e.Code != want {
		tb.Fatalf("Error.Code = %q, want %q", e.Code, want)
	}
	if field != "" && e.Field != field {
		tb.Fatalf("Error.Field = %q, want %q (err: %v)", e.Field, field, err)
	}
	if e.Msg == "" {
		tb.Fatalf("Error.Msg is empty (code %q)", e.Code)
	}
}

// ev returns an event with no ts and no event_id.
func ev(content, reaction, user string, a store.Action, src ingest.Source) ingest.Event {
	return ingest.Event{Op: store.Op{ContentID: content, ReactionType: reaction, UserID: user, Action: a}, Source: src}
}

// topicCase is one row of the topic table; its rows seed FuzzTopicEvent.
type topicCase struct {
	name, prefix, topic string
	content, reaction   string
	ok                  bool
}

var topicCases = []topicCase{
	{name: "OK", prefix: "kitchen", topic: "kitchen/Stew/fire", content: "Stew", reaction: "fire", ok: true},
	{name: "MultiLevelPrefix", prefix: "plant1/kitchen", topic: "plant1/kitchen/Stew/fire", content: "Stew", reaction: "fire", ok: true},
	{name: "UTF8Levels", prefix: "kitchen", topic: "kitchen/Crème brûlée/🔥", content: "Crème brûlée", reaction: "🔥", ok: true},
	{name: "SpacesInLevels", prefix: "kitchen", topic: "kitchen/Beef Stew/on fire", content: "Beef Stew", reaction: "on fire", ok: true},
	// Exactly three levels is an ingest topic even when a level is empty or carries a
	// character that ids may not: the edge then rejects the event with a reason
	// (ParsePayload's CheckID), instead of relaying it as a foreign topic.
	{name: "EmptyContent", prefix: "kitchen", topic: "kitchen//fire", content: "", reaction: "fire", ok: true},
	{name: "EmptyReaction", prefix: "kitchen", topic: "kitchen/Stew/", content: "Stew", reaction: "", ok: true},
	{name: "EmptyBoth", prefix: "kitchen", topic: "kitchen//", content: "", reaction: "", ok: true},
	{name: "WildcardInLevel", prefix: "kitchen", topic: "kitchen/+/fire", content: "+", reaction: "fire", ok: true},

	{name: "MissingReaction", prefix: "kitchen", topic: "kitchen/Stew"},
	{name: "MissingBoth", prefix: "kitchen", topic: "kitchen/"},
	{name: "PrefixOnly", prefix: "kitchen", topic: "kitchen"},
	{name: "Empty", prefix: "kitchen", topic: ""},
	{name: "ExtraLevel", prefix: "kitchen", topic: "kitchen/Stew/fire/extra"},
	{name: "TrailingSlash", prefix: "kitchen", topic: "kitchen/Stew/fire/"},
	{name: "LeadingSlash", prefix: "kitchen", topic: "/kitchen/Stew/fire"},
	{name: "OtherPrefix", prefix: "kitchen", topic: "bar/Stew/fire"},
	{name: "PrefixIsAPrefixOfTheLevel", prefix: "kitchen", topic: "kitchenette/Stew/fire"},
	{name: "PrefixCase", prefix: "kitchen", topic: "Kitchen/Stew/fire"},
	{name: "MultiLevelPrefixMissingLevel", prefix: "plant1/kitchen", topic: "plant1/kitchen/Stew"},
	{name: "MultiLevelPrefixExtraLevel", prefix: "plant1/kitchen", topic: "plant1/kitchen/Stew/fire/x"},
	{name: "MultiLevelPrefixPartial", prefix: "plant1/kitchen", topic: "plant1/Stew/fire"},
	{name: "FirstLevelOfMultiLevelPrefix", prefix: "plant1", topic: "plant1/kitchen/Stew/fire"},
	{name: "LastLevelOfMultiLevelPrefix", prefix: "kitchen", topic: "plant1/kitchen/Stew/fire"},
	{name: "SysTopic", prefix: "kitchen", topic: "$SYS/broker/uptime"},
}

func TestTopicEvent(t *testing.T) {
	for _, tc := range topicCases {
		t.Run(tc.name, func(t *testing.T) {
			content, reaction, ok := ingest.TopicEvent(tc.prefix, tc.topic)
			if ok != tc.ok || content != tc.content || reaction != tc.reaction {
				t.Fatalf("TopicEvent(%q, %q) = (%q, %q, %v), want (%q, %q, %v)",
					tc.prefix, tc.topic, content, reaction, ok, tc.content, tc.reaction, tc.ok)
			}
		})
	}
}

// TestTopicEvent_ThenParsePayload checks the two steps of the MQTT edge together: a
// three-level topic with a bad level is an ingest topic whose event is rejected.
func TestTopicEvent_ThenParsePayload(t *testing.T) {
	for _, tc := range []struct {
		topic string
		code  ingest.Code
		field string
	}{
		{"kitchen//fire", ingest.CodeMissingField, "content_id"},
		{"kitchen/Stew/", ingest.CodeMissingField, "reaction_type"},
		{"kitchen/+/fire", ingest.CodeInvalidID, "content_id"},
		{"kitchen/Stew/#", ingest.CodeInvalidID, "reaction_type"},
		{"kitchen/Stew/" + strings.Repeat("r", ingest.MaxReactionLen+1), ingest.CodeInvalidID, "reaction_type"},
	} {
		t.Run(tc.topic, func(t *testing.T) {
			content, reaction, ok := ingest.TopicEvent("kitchen", tc.topic)
			if !ok {
				t.Fatalf("TopicEvent(kitchen, %q) is not an ingest topic, want one", tc.topic)
			}
			_, err := ingest.ParsePayload(content, reaction, []byte("add Sam"), ingest.SourceMQTT)
			mustCode(t, err, tc.code, tc.field)
		})
	}
}

// payloadCase is one row of the payload table. Its rows seed FuzzParsePayload and
// FuzzDecodeJSON. A row with code == "" must parse to want.
type payloadCase struct {
	name              string
	content, reaction string // the topic's ids; "Stew" and "fire" when empty and !topicAsIs
	topicAsIs         bool   // use content and reaction even when empty
	payload           string
	src               ingest.Source
	want              ingest.Event
	code              ingest.Code
	field             string
}

func (tc payloadCase) topic() (content, reaction string) {
	if tc.topicAsIs {
		return tc.content, tc.reaction
	}
	content, reaction = tc.content, tc.reaction
	if content == "" {
		content = "Stew"
	}
	if reaction == "" {
		reaction = "fire"
	}
	return content, reaction
}

const (
	fromMQTT = ingest.SourceMQTT
	fromHTTP = ingest.SourceHTTP
)

var payloadCases = []payloadCase{
	// Text.
	{name: "TextAdd", payload: "add Sam", want: ev("Stew", "fire", "Sam", store.Add, fromMQTT)},
	{name: "TextRemove", payload: "remove Sam", want: ev("Stew", "fire", "Sam", store.Remove, fromMQTT)},
	{name: "TextUserWithSpaces", payload: "add Sam Smith", want: ev("Stew", "fire", "Sam Smith", store.Add, fromMQTT)},
	{name: "TextSeveralSpacesAfterVerb", payload: "add   Sam", want: ev("Stew", "fire", "Sam", store.Add, fromMQTT)},
	{name: "TextTrimmed", payload: " \t add Sam \r\n", want: ev("Stew", "fire", "Sam", store.Add, fromMQTT)},
	{name: "TextUTF8User", payload: "add Zoë 🔥", want: ev("Stew", "fire", "Zoë 🔥", store.Add, fromMQTT)},
	{name: "TextHTTPSource", payload: "add Sam", src: fromHTTP, want: ev("Stew", "fire", "Sam", store.Add, fromHTTP)},
	{name: "TextUTF8Topic", content: "Crème brûlée", reaction: "🔥", payload: "add Sam", want: ev("Crème brûlée", "🔥", "Sam", store.Add, fromMQTT)},
	{name: "TextVerbOnly", payload: "add", code: ingest.CodeBadPayload},
	{name: "TextVerbAndSpace", payload: "add ", code: ingest.CodeBadPayload},
	{name: "TextUserOnly", payload: "Sam", code: ingest.CodeBadPayload},
	{name: "TextUnknownVerb", payload: "delete Sam", code: ingest.CodeInvalidAction, field: "action"},
	{name: "TextVerbCase", payload: "ADD Sam", code: ingest.CodeInvalidAction, field: "action"},
	{name: "TextControlInUser", payload: "add Sam\x00", code: ingest.CodeInvalidID, field: "user_id"},
	{name: "TextC1ControlInUser", payload: "add Sam\u0085x", code: ingest.CodeInvalidID, field: "user_id"},
	{name: "TextInvalidUTF8User", payload: "add \xff", code: ingest.CodeInvalidID, field: "user_id"},
	{name: "TextSlashInUser", payload: "add a/b", code: ingest.CodeInvalidID, field: "user_id"},
	{name: "TextUserTooLong", payload: "add " + strings.Repeat("u", ingest.MaxIDLen+1), code: ingest.CodeInvalidID, field: "user_id"},
	{name: "TextUserMaxLen", payload: "add " + strings.Repeat("u", ingest.MaxIDLen), want: ev("Stew", "fire", strings.Repeat("u", ingest.MaxIDLen), store.Add, fromMQTT)},

	// Empty.
	{name: "Empty", payload: "", code: ingest.CodeBadPayload},
	{name: "OnlyWhitespace", payload: " \r\n\t ", code: ingest.CodeBadPayload},
	{name: "JSONArray", payload: `["add","Sam"]`, code: ingest.CodeBadPayload},
	{name: "JSONNull", payload: `null`, code: ingest.CodeBadPayload},

	// Short JSON.
	{name: "JSONShort", payload: `{"user_id":"Sam","action":"add"}`, want: ev("Stew", "fire", "Sam", store.Add, fromMQTT)},
	{name: "JSONShortRemove", payload: `{"action":"remove","user_id":"Sam"}`, want: ev("Stew", "fire", "Sam", store.Remove, fromMQTT)},
	{name: "JSONShortTSAndEventID", payload: `{"user_id":"Sam","action":"add","ts":1700000000123,"event_id":"e-1"}`,
		want: ingest.Event{Op: store.Op{ContentID: "Stew", ReactionType: "fire", UserID: "Sam", Action: store.Add, TS: 1700000000123}, EventID: "e-1"}},
	{name: "JSONZeroTS", payload: `{"user_id":"Sam","action":"add","ts":0}`, want: ev("Stew", "fire", "Sam", store.Add, fromMQTT)},
	{name: "JSONNullTS", payload: `{"user_id":"Sam","action":"add","ts":null}`, want: ev("Stew", "fire", "Sam", store.Add, fromMQTT)},
	{name: "JSONTrimmed", payload: "\n\t {\"user_id\":\"Sam\",\"action\":\"add\"} \r\n", want: ev("Stew", "fire", "Sam", store.Add, fromMQTT)},
	{name: "JSONUserWithSpaces", payload: `{"user_id":"Sam Smith","action":"add"}`, want: ev("Stew", "fire", "Sam Smith", store.Add, fromMQTT)},
	{name: "JSONEscapedUser", payload: `{"user_id":"Zo\u00eb","action":"add"}`, want: ev("Stew", "fire", "Zoë", store.Add, fromMQTT)},
	{name: "JSONHTTPSource", payload: `{"user_id":"Sam","action":"add"}`, src: fromHTTP, want: ev("Stew", "fire", "Sam", store.Add, fromHTTP)},

	// The seed's JSON.
	{name: "SeedJSON", payload: `{"type":"reaction","action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`,
		want: ev("Stew", "fire", "Sam", store.Add, fromMQTT)},
	{name: "SeedJSONWithoutType", payload: `{"action":"remove","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`,
		want: ev("Stew", "fire", "Sam", store.Remove, fromMQTT)},
	{name: "SeedJSONOnlyContentID", payload: `{"action":"add","content_id":"Stew","user_id":"Sam"}`, want: ev("Stew", "fire", "Sam", store.Add, fromMQTT)},
	{name: "SeedJSONUTF8Topic", content: "Crème brûlée", reaction: "🔥",
		payload: `{"type":"reaction","action":"add","content_id":"Crème brûlée","user_id":"Sam","reaction_type":"🔥"}`,
		want:    ev("Crème brûlée", "🔥", "Sam", store.Add, fromMQTT)},
	{name: "ContentIDMismatch", payload: `{"type":"reaction","action":"add","content_id":"Soup","user_id":"Sam","reaction_type":"fire"}`,
		code: ingest.CodeIDMismatch, field: "content_id"},
	{name: "ContentIDCaseMismatch", payload: `{"action":"add","content_id":"stew","user_id":"Sam"}`, code: ingest.CodeIDMismatch, field: "content_id"},
	{name: "ContentIDEmptyMismatch", payload: `{"action":"add","content_id":"","user_id":"Sam"}`, code: ingest.CodeIDMismatch, field: "content_id"},
	{name: "ReactionTypeMismatch", payload: `{"type":"reaction","action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"yum"}`,
		code: ingest.CodeIDMismatch, field: "reaction_type"},
	{name: "TypeNotReaction", payload: `{"type":"comment","action":"add","user_id":"Sam"}`, code: ingest.CodeInvalidField, field: "type"},
	{name: "TypeEmpty", payload: `{"type":"","action":"add","user_id":"Sam"}`, code: ingest.CodeInvalidField, field: "type"},

	// Bad JSON and bad fields.
	{name: "JSONUnknownAction", payload: `{"user_id":"Sam","action":"toggle"}`, code: ingest.CodeInvalidAction, field: "action"},
	{name: "JSONActionCase", payload: `{"user_id":"Sam","action":"Add"}`, code: ingest.CodeInvalidAction, field: "action"},
	{name: "JSONMissingAction", payload: `{"user_id":"Sam"}`, code: ingest.CodeMissingField, field: "action"},
	{name: "JSONNullAction", payload: `{"user_id":"Sam","action":null}`, code: ingest.CodeMissingField, field: "action"},
	{name: "JSONMissingUser", payload: `{"action":"add"}`, code: ingest.CodeMissingField, field: "user_id"},
	{name: "JSONEmptyUser", payload: `{"user_id":"","action":"add"}`, code: ingest.CodeMissingField, field: "user_id"},
	{name: "JSONEmptyObject", payload: `{}`, code: ingest.CodeMissingField, field: "action"},
	{name: "JSONNegativeTS", payload: `{"user_id":"Sam","action":"add","ts":-1}`, code: ingest.CodeInvalidField, field: "ts"},
	{name: "JSONFractionalTS", payload: `{"user_id":"Sam","action":"add","ts":1.5}`, code: ingest.CodeInvalidField, field: "ts"},
	{name: "JSONStringTS", payload: `{"user_id":"Sam","action":"add","ts":"1700000000000"}`, code: ingest.CodeInvalidField, field: "ts"},
	{name: "JSONNumberAction", payload: `{"user_id":"Sam","action":1}`, code: ingest.CodeInvalidField, field: "action"},
	{name: "JSONNumberUser", payload: `{"user_id":42,"action":"add"}`, code: ingest.CodeInvalidField, field: "user_id"},
	{name: "JSONObjectEventID", payload: `{"user_id":"Sam","action":"add","event_id":{}}`, code: ingest.CodeInvalidField, field: "event_id"},
	{name: "JSONTruncated", payload: `{"user_id":"Sam",`, code: ingest.CodeBadJSON},
	{name: "JSONOpenBrace", payload: `{`, code: ingest.CodeBadJSON},
	{name: "JSONNotJSON", payload: `{user_id: Sam}`, code: ingest.CodeBadJSON},
	{name: "JSONTrailingText", payload: `{"user_id":"Sam","action":"add"} add Ann`, code: ingest.CodeBadJSON},
	{name: "JSONTrailingObject", payload: `{"user_id":"Sam","action":"add"}{"user_id":"Ann","action":"add"}`, code: ingest.CodeBadJSON},
	{name: "JSONTrailingBrace", payload: `{"user_id":"Sam","action":"add"}}`, code: ingest.CodeBadJSON},
	{name: "JSONTrailingBracket", payload: `{"user_id":"Sam","action":"add"} ]`, code: ingest.CodeBadJSON},
	{name: "JSONInvalidUTF8User", payload: "{\"user_id\":\"Sam\xff\",\"action\":\"add\"}", code: ingest.CodeBadJSON},
	{name: "JSONInvalidUTF8OtherField", payload: "{\"user_id\":\"Sam\",\"action\":\"add\",\"note\":\"\xed\"}", code: ingest.CodeBadJSON},
	{name: "JSONLoneSurrogateEscape", payload: `{"user_id":"Sam\ud800","action":"add"}`, code: ingest.CodeInvalidID, field: "user_id"},
	{name: "JSONTrailingGarbageAfterCloser", payload: `{"user_id":"Sam","action":"add"}}x`, code: ingest.CodeBadJSON},
	{name: "JSONControlInUser", payload: `{"user_id":"Sam\u0000","action":"add"}`, code: ingest.CodeInvalidID, field: "user_id"},
	{name: "JSONC1ControlInUser", payload: `{"user_id":"Sam\u0085","action":"add"}`, code: ingest.CodeInvalidID, field: "user_id"},
	{name: "JSONHashInUser", payload: `{"user_id":"#1","action":"add"}`, code: ingest.CodeInvalidID, field: "user_id"},
	{name: "JSONEventIDTooLong", payload: `{"user_id":"Sam","action":"add","event_id":"` + strings.Repeat("e", ingest.MaxIDLen+1) + `"}`,
		code: ingest.CodeInvalidField, field: "event_id"},

	// Bad topic ids.
	{name: "TopicEmptyContent", topicAsIs: true, content: "", reaction: "fire", payload: "add Sam", code: ingest.CodeMissingField, field: "content_id"},
	{name: "TopicEmptyReaction", topicAsIs: true, content: "Stew", reaction: "", payload: `{"user_id":"Sam","action":"add"}`, code: ingest.CodeMissingField, field: "reaction_type"},
	{name: "TopicReactionTooLong", reaction: strings.Repeat("r", ingest.MaxReactionLen+1), payload: "add Sam", code: ingest.CodeInvalidID, field: "reaction_type"},
	{name: "TopicWildcardContent", content: "+", payload: "add Sam", code: ingest.CodeInvalidID, field: "content_id"},
}

func TestParsePayload(t *testing.T) {
	for _, tc := range payloadCases {
		t.Run(tc.name, func(t *testing.T) {
			content, reaction := tc.topic()
			got, err := ingest.ParsePayload(content, reaction, []byte(tc.payload), tc.src)
			if tc.code != "" {
				mustCode(t, err, tc.code, tc.field)
				if got != (ingest.Event{}) {
					t.Fatalf("event = %+v with the error, want the zero Event", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePayload(%q, %q, %q) error: %v", content, reaction, tc.payload, err)
			}
			if got != tc.want {
				t.Fatalf("ParsePayload(%q, %q, %q)\n got %+v\nwant %+v", content, reaction, tc.payload, got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("parsed event does not validate: %v", err)
			}
		})
	}
}

// decodeCases is the table of the seed's JSON body (HTTP); its rows seed FuzzDecodeJSON.
var decodeCases = []struct {
	name  string
	data  string
	want  ingest.Event
	code  ingest.Code
	field string
}{
	{name: "Seed", data: `{"type":"reaction","action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`,
		want: ev("Stew", "fire", "Sam", store.Add, fromHTTP)},
	{name: "WithoutType", data: `{"action":"remove","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`,
		want: ev("Stew", "fire", "Sam", store.Remove, fromHTTP)},
	{name: "TSAndEventID", data: `{"action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire","ts":1,"event_id":"e"}`,
		want: ingest.Event{Op: store.Op{ContentID: "Stew", ReactionType: "fire", UserID: "Sam", Action: store.Add, TS: 1}, Source: fromHTTP, EventID: "e"}},
	{name: "Whitespace", data: " \n{ \"action\" : \"add\", \"content_id\":\"Stew\", \"user_id\":\"Sam\", \"reaction_type\":\"fire\" }\n",
		want: ev("Stew", "fire", "Sam", store.Add, fromHTTP)},
	{name: "UTF8IDs", data: `{"action":"add","content_id":"Crème brûlée","user_id":"Zoë","reaction_type":"🔥"}`,
		want: ev("Crème brûlée", "🔥", "Zoë", store.Add, fromHTTP)},
	{name: "MissingContentID", data: `{"action":"add","user_id":"Sam","reaction_type":"fire"}`, code: ingest.CodeMissingField, field: "content_id"},
	{name: "MissingReactionType", data: `{"action":"add","content_id":"Stew","user_id":"Sam"}`, code: ingest.CodeMissingField, field: "reaction_type"},
	{name: "MissingUserID", data: `{"action":"add","content_id":"Stew","reaction_type":"fire"}`, code: ingest.CodeMissingField, field: "user_id"},
	{name: "MissingAction", data: `{"content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`, code: ingest.CodeMissingField, field: "action"},
	{name: "UnknownAction", data: `{"action":"like","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`, code: ingest.CodeInvalidAction, field: "action"},
	{name: "TypeNotReaction", data: `{"type":"comment","action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`,
		code: ingest.CodeInvalidField, field: "type"},
	{name: "NegativeTS", data: `{"action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire","ts":-5}`, code: ingest.CodeInvalidField, field: "ts"},
	{name: "ReactionTypeTooLong", data: `{"action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"` + strings.Repeat("r", 65) + `"}`,
		code: ingest.CodeInvalidID, field: "reaction_type"},
	{name: "SlashInContentID", data: `{"action":"add","content_id":"a/b","user_id":"Sam","reaction_type":"fire"}`, code: ingest.CodeInvalidID, field: "content_id"},
	{name: "PlusInReactionType", data: `{"action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"+1"}`, code: ingest.CodeInvalidID, field: "reaction_type"},
	{name: "Empty", data: ``, code: ingest.CodeBadJSON},
	{name: "Array", data: `[]`, code: ingest.CodeBadJSON},
	{name: "String", data: `"add Sam"`, code: ingest.CodeBadJSON},
	{name: "Truncated", data: `{"action":"add"`, code: ingest.CodeBadJSON},
	{name: "WrongType", data: `{"action":"add","content_id":7,"user_id":"Sam","reaction_type":"fire"}`, code: ingest.CodeInvalidField, field: "content_id"},
	{name: "TrailingObject", data: `{"action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"} {}`, code: ingest.CodeBadJSON},
	{name: "TrailingBrace", data: `{"action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}}`, code: ingest.CodeBadJSON},
	{name: "InvalidUTF8", data: "{\"action\":\"add\",\"content_id\":\"Stew\xc3\",\"user_id\":\"Sam\",\"reaction_type\":\"fire\"}", code: ingest.CodeBadJSON},
}

func TestDecodeJSON(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ingest.DecodeJSON([]byte(tc.data), ingest.SourceHTTP)
			if tc.code != "" {
				mustCode(t, err, tc.code, tc.field)
				return
			}
			if err != nil {
				t.Fatalf("DecodeJSON(%q) error: %v", tc.data, err)
			}
			if got != tc.want {
				t.Fatalf("DecodeJSON(%q)\n got %+v\nwant %+v", tc.data, got, tc.want)
			}
		})
	}
}

var idCases = []struct {
	name string
	id   string
	max  int
	code ingest.Code // "" when the id is acceptable
}{
	{name: "OneByte", id: "a", max: ingest.MaxIDLen},
	{name: "MaxLen", id: strings.Repeat("a", ingest.MaxIDLen), max: ingest.MaxIDLen},
	{name: "TooLong", id: strings.Repeat("a", ingest.MaxIDLen+1), max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "Empty", id: "", max: ingest.MaxIDLen, code: ingest.CodeMissingField},
	{name: "ReactionMaxLen", id: strings.Repeat("r", ingest.MaxReactionLen), max: ingest.MaxReactionLen},
	{name: "ReactionTooLong", id: strings.Repeat("r", ingest.MaxReactionLen+1), max: ingest.MaxReactionLen, code: ingest.CodeInvalidID},
	{name: "SpacesAndPunctuation", id: "Sam Smith (table 4) $1.50 @home", max: ingest.MaxIDLen},
	{name: "MultiByte", id: "Crème brûlée 日本語 🔥", max: ingest.MaxIDLen},
	{name: "MultiByteAtMaxLen", id: strings.Repeat("🔥", ingest.MaxIDLen/4), max: ingest.MaxIDLen},
	// The limits are bytes, not runes: 17 four-byte runes are 68 bytes.
	{name: "MultiByteOverMaxLenInBytes", id: strings.Repeat("🔥", 17), max: ingest.MaxReactionLen, code: ingest.CodeInvalidID},
	// U+FFFD is what broken encodings and JSON's lone surrogate escapes decode to.
	{name: "ReplacementCharacter", id: "a\uFFFD", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "NoBreakSpace", id: "a\u00a0b", max: ingest.MaxIDLen},
	{name: "NUL", id: "a\x00b", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "Newline", id: "a\nb", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "Tab", id: "\t", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "UnitSeparator", id: "a\x1f", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "DEL", id: "a\x7f", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "C1First", id: "a\u0080", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "C1NextLine", id: "a\u0085b", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "C1Last", id: "\u009f", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "InvalidUTF8Byte", id: "a\xffb", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "TruncatedUTF8", id: "caf\xc3", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "OverlongSlash", id: "a\xc0\xafb", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "Surrogate", id: "\xed\xa0\x80", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "Slash", id: "a/b", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "Plus", id: "+1", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "Hash", id: "#", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
	{name: "TooLongAndControl", id: strings.Repeat("a", 300) + "\x00", max: ingest.MaxIDLen, code: ingest.CodeInvalidID},
}

func TestCheckID(t *testing.T) {
	for _, tc := range idCases {
		t.Run(tc.name, func(t *testing.T) {
			err := ingest.CheckID("user_id", tc.id, tc.max)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("CheckID(%q, %d) = %v, want nil", tc.id, tc.max, err)
				}
				return
			}
			mustCode(t, err, tc.code, "user_id")
			if msg := err.Error(); !strings.HasPrefix(msg, "user_id ") {
				t.Fatalf("error %q does not name the field", msg)
			}
		})
	}
}

func TestEvent_Validate(t *testing.T) {
	ok := ev("Stew", "fire", "Sam", store.Add, fromMQTT)
	for _, tc := range []struct {
		name  string
		edit  func(*ingest.Event)
		code  ingest.Code
		field string
	}{
		{name: "OK", edit: func(*ingest.Event) {}},
		{name: "Remove", edit: func(e *ingest.Event) { e.Action = store.Remove }},
		{name: "EventIDMaxLen", edit: func(e *ingest.Event) { e.EventID = strings.Repeat("e", ingest.MaxIDLen) }},
		{name: "EventIDMayHoldAnything", edit: func(e *ingest.Event) { e.EventID = "a/b#+\x00" }},
		{name: "ZeroAction", edit: func(e *ingest.Event) { e.Action = 0 }, code: ingest.CodeInvalidAction, field: "action"},
		{name: "UnknownAction", edit: func(e *ingest.Event) { e.Action = 3 }, code: ingest.CodeInvalidAction, field: "action"},
		{name: "EventIDTooLong", edit: func(e *ingest.Event) { e.EventID = strings.Repeat("e", ingest.MaxIDLen+1) }, code: ingest.CodeInvalidField, field: "event_id"},
		{name: "EmptyContent", edit: func(e *ingest.Event) { e.ContentID = "" }, code: ingest.CodeMissingField, field: "content_id"},
		{name: "ReactionTooLong", edit: func(e *ingest.Event) { e.ReactionType = strings.Repeat("r", 65) }, code: ingest.CodeInvalidID, field: "reaction_type"},
		{name: "UserWithControl", edit: func(e *ingest.Event) { e.UserID = "\u0085" }, code: ingest.CodeInvalidID, field: "user_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ok
			tc.edit(&e)
			err := e.Validate()
			if tc.code == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", e, err)
				}
				return
			}
			mustCode(t, err, tc.code, tc.field)
		})
	}
}

func TestCodeOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want ingest.Code
	}{
		{"Error", &ingest.Error{Code: ingest.CodeBadJSON, Msg: "x"}, ingest.CodeBadJSON},
		{"WrappedError", fmt.Errorf("decoding body: %w", &ingest.Error{Code: ingest.CodeInvalidID, Msg: "x"}), ingest.CodeInvalidID},
		{"QueueFull", ingest.ErrQueueFull, ingest.CodeOverload},
		{"WrappedQueueFull", fmt.Errorf("enqueue: %w", ingest.ErrQueueFull), ingest.CodeOverload},
		{"Closed", ingest.ErrClosed, ingest.CodeShuttingDown},
		{"OtherError", errors.New("disk on fire"), ingest.CodeStoreError},
		{"StoreClosed", store.ErrClosed, ingest.CodeStoreError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ingest.CodeOf(tc.err); got != tc.want {
				t.Fatalf("CodeOf(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestError_Error(t *testing.T) {
	if got, want := (&ingest.Error{Code: ingest.CodeInvalidID, Field: "user_id", Msg: "is not valid UTF-8"}).Error(), "user_id is not valid UTF-8"; got != want {
		t.Errorf("with field: got %q, want %q", got, want)
	}
	if got, want := (&ingest.Error{Code: ingest.CodeBadPayload, Msg: "empty payload"}).Error(), "empty payload"; got != want {
		t.Errorf("without field: got %q, want %q", got, want)
	}
}

func TestSource_String(t *testing.T) {
	for src, want := range map[ingest.Source]string{ingest.SourceMQTT: "mqtt", ingest.SourceHTTP: "http", 200: "unknown"} {
		if got := src.String(); got != want {
			t.Errorf("Source(%d).String() = %q, want %q", src, got, want)
		}
	}
}

// TestDecodeJSON_TSAhead: a ts far ahead of the server's clock is refused (it would
// win over every later event of the user); a little skew is accepted.
func TestDecodeJSON_TSAhead(t *testing.T) {
	now := time.Now().UnixMilli()
	ok := fmt.Sprintf(`{"action":"add","content_id":"c","reaction_type":"r","user_id":"u","ts":%d}`, now+60_000)
	if _, err := ingest.DecodeJSON([]byte(ok), ingest.SourceHTTP); err != nil {
		t.Fatalf("ts 1 min ahead: %v", err)
	}
	bad := fmt.Sprintf(`{"action":"add","content_id":"c","reaction_type":"r","user_id":"u","ts":%d}`, now+int64(2*time.Hour/time.Millisecond))
	_, err := ingest.DecodeJSON([]byte(bad), ingest.SourceHTTP)
	var e *ingest.Error
	if !errors.As(err, &e) || e.Code != ingest.CodeInvalidField || e.Field != "ts" || !strings.Contains(e.Msg, "ahead") {
		t.Fatalf("ts 2h ahead: %v, want an invalid_field error on ts", err)
	}
	if _, err := ingest.ParsePayload("c", "r", []byte(fmt.Sprintf(`{"user_id":"u","action":"add","ts":%d}`, now+int64(2*time.Hour/time.Millisecond))), ingest.SourceMQTT); err == nil {
		t.Fatal("MQTT payload with ts 2h ahead accepted")
	}
}

// TestParsePayload_Allocs: decoding an MQTT event's JSON allocates its user id and
// nothing else (the content and reaction come from the topic). The fast decoder's
// struct escaped to the heap: one more allocation for every JSON event.
func TestParsePayload_Allocs(t *testing.T) {
	payload := []byte(`{"user_id":"Sam","action":"add","ts":1700000000123}`)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := ingest.ParsePayload("Stew", "fire", payload, ingest.SourceMQTT); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("%.1f allocations per JSON event, want at most 1 (the user id)", allocs)
	}
}
