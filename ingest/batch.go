package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxBatchItems is the most events one batch (HTTP POST /api/v1/reactions, the MQTT
// batch topic) may carry.
const MaxBatchItems = 1000

// CodeTooManyItems refuses a batch of more than MaxBatchItems events.
const CodeTooManyItems Code = "too_many_items"

// SplitBatch returns the raw items of a batch: the elements of a JSON array, or the
// non-blank lines of NDJSON (one JSON object per line). Items need not be valid events;
// an array must be well-formed JSON. Errors are *Error with CodeBadJSON or
// CodeTooManyItems.
func SplitBatch(body []byte, ndjson bool) ([][]byte, error) {
	if ndjson {
		return splitNDJSON(body)
	}
	return splitJSONArray(body)
}

func badBatch(msg string) error { return &Error{Code: CodeBadJSON, Msg: msg} }

func tooManyItems() error {
	return &Error{Code: CodeTooManyItems, Msg: fmt.Sprintf("batch has more than %d items; split it", MaxBatchItems)}
}

func splitJSONArray(body []byte) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return nil, badBatch("body is empty; want a JSON array of events")
	}
	if err != nil {
		return nil, badBatch("malformed JSON: " + err.Error())
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, badBatch("body is not a JSON array of events")
	}
	var items [][]byte
	for dec.More() {
		if len(items) == MaxBatchItems {
			return nil, tooManyItems()
		}
		var item json.RawMessage
		if err := dec.Decode(&item); err != nil {
			return nil, badBatch(fmt.Sprintf("malformed JSON at item %d: %v", len(items), err))
		}
		items = append(items, item)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, badBatch("malformed JSON: " + err.Error())
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return nil, badBatch("unexpected data after the JSON array")
	}
	return items, nil
}

// splitNDJSON returns the non-blank lines of body. A line that is not JSON is the
// item's error, not the batch's.
func splitNDJSON(body []byte) ([][]byte, error) {
	var items [][]byte
	for line := range bytes.Lines(body) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(items) == MaxBatchItems {
			return nil, tooManyItems()
		}
		items = append(items, line)
	}
	return items, nil
}

// DecodeBatchItem turns one item of a batch into a validated event from src.
func DecodeBatchItem(b []byte, src Source) (Event, error) {
	if len(b) == 0 || b[0] != '{' {
		return Event{}, &Error{Code: CodeBadJSON, Msg: "item is not a JSON object"}
	}
	return DecodeJSON(b, src)
}
