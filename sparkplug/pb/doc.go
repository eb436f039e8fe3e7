// Package pb is the Go code of Eclipse Tahu's Sparkplug B payload definition,
// sparkplug_b.proto (copied unchanged from eclipse/tahu, sparkplug_b/sparkplug_b.proto at
// commit 5736e404889d4b95910613040a99ba79589ffb13, EPL-2.0 like its header says).
//
// sparkplug_b.pb.go was generated with protoc 3.21.12 (Debian's protobuf-compiler) and
// protoc-gen-go v1.36.12 (google.golang.org/protobuf/cmd/protoc-gen-go, the version
// go.mod pins); to regenerate, with both on PATH, run go generate in this directory.
package pb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go_opt=Msparkplug_b.proto=github.com/arina-dev/arina/sparkplug/pb sparkplug_b.proto
