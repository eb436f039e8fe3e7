package sparkplug

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"strings"

	"github.com/arina-dev/arina/ingest"
)

// compressedUUID marks a payload whose body is another Payload, compressed, as
// Eclipse Tahu's clients send it when asked to compress: DEFLATE (the zlib format,
// what pako.deflate and java.util.zip.Deflater write) unless a String metric named
// "algorithm" says GZIP.
const compressedUUID = "SPBV1.0_COMPRESSED"

// decompress returns the Payload inside a compressed one, at most max bytes of it.
func decompress(p *payload, max int) ([]byte, error) {
	algorithm := "DEFLATE"
	for i := range p.metrics {
		if m := &p.metrics[i]; m.name == "algorithm" && m.kind == valString {
			algorithm = strings.ToUpper(m.s)
		}
	}
	var r io.ReadCloser
	var err error
	switch algorithm {
	case "DEFLATE":
		r, err = zlib.NewReader(bytes.NewReader(p.body))
	case "GZIP":
		r, err = gzip.NewReader(bytes.NewReader(p.body))
	default:
		return nil, &ingest.Error{Code: ingest.CodeBadPayload, Msg: fmt.Sprintf("compressed Sparkplug B payload: unknown algorithm %q (DEFLATE or GZIP)", truncate(algorithm))}
	}
	if err != nil {
		return nil, &ingest.Error{Code: ingest.CodeBadPayload, Msg: "compressed Sparkplug B payload: " + err.Error()}
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, &ingest.Error{Code: ingest.CodeBadPayload, Msg: "compressed Sparkplug B payload: " + err.Error()}
	}
	if len(out) > max {
		return nil, &ingest.Error{Code: ingest.CodePayloadTooLarge, Msg: fmt.Sprintf("compressed Sparkplug B payload decompresses to over the %d byte limit", max)}
	}
	return out, nil
}
