package config

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestValidate_Messages: a file with a value out of range for nearly every part gets,
// line for line, the messages check-config printed before the ranges moved into the
// parts' Options.Validate (testdata/every_range.golden, sorted: the lines are now
// grouped by section).
func TestValidate_Messages(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("arina", pflag.ContinueOnError)
	fs.String("config", "", "")
	if err := fs.Parse([]string{"--config", "testdata/every_range.yaml"}); err != nil {
		t.Fatal(err)
	}
	_, err := Load(fs, func(string) string { return "" })
	if err == nil {
		t.Fatal("Load = nil, want the problems of testdata/every_range.yaml")
	}
	golden, rerr := os.ReadFile("testdata/every_range.golden")
	if rerr != nil {
		t.Fatal(rerr)
	}
	got := strings.Split(err.Error(), "\n")
	slices.Sort(got)
	want := strings.Split(strings.TrimSuffix(string(golden), "\n"), "\n")
	if !slices.Equal(got, want) {
		t.Fatalf("messages (sorted):\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
