package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/auth"
)

// MustRunIn runs the command line args like main does, with stdin as standard input.
func MustRunIn(tb testing.TB, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	root := newRootCmd(&out, &errOut, mapEnv(nil))
	root.SetIn(stdin)
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// TestRun_Passwd: `arina passwd` hashes the first line of a piped standard input; the
// hash goes into a users file as printed and authenticates exactly that password.
func TestRun_Passwd(t *testing.T) {
	t.Parallel()
	out, _, err := MustRunIn(t, strings.NewReader("correct horse\r\nsecond line\n"), "passwd")
	if err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSuffix(out, "\n")
	if strings.Contains(hash, "\n") || !strings.HasPrefix(hash, "$2a$10$") {
		t.Fatalf("passwd printed %q, want one bcrypt hash of the default cost", out)
	}
	us, err := auth.ParseUsers(fmt.Appendf(nil, "users:\n  - {username: u, password_hash: %q}\n", hash))
	if err != nil {
		t.Fatalf("the printed hash does not load: %v", err)
	}
	if !us.Authenticate("u", []byte("correct horse")) {
		t.Fatal("the hash does not authenticate the password")
	}
	if us.Authenticate("u", []byte("correct horse\r")) {
		t.Fatal("the line end is part of the password")
	}
}

func TestRun_PasswdRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stdin, want string
	}{
		{"Empty", "", "empty password"},
		{"EmptyLine", "\n", "empty password"},
		{"OverBcryptLimit", strings.Repeat("x", 73) + "\n", "72 bytes"},
		{"Huge", strings.Repeat("x", 10000), "over 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := MustRunIn(t, strings.NewReader(tt.stdin), "passwd")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("passwd error = %v, want one mentioning %q", err, tt.want)
			}
			if out != "" {
				t.Fatalf("passwd printed %q after an error", out)
			}
		})
	}
	if _, _, err := MustRunIn(t, strings.NewReader("x\n"), "passwd", "extra"); err == nil {
		t.Fatal("passwd accepted an argument")
	}
}

// tokenOutput is what `arina token` printed.
type tokenOutput struct {
	token string
	entry string // the YAML lines of the entry
}

func parseTokenOutput(tb testing.TB, out string) tokenOutput {
	tb.Helper()
	var o tokenOutput
	for line := range strings.SplitSeq(out, "\n") {
		switch {
		case strings.HasPrefix(line, "token: "):
			o.token = strings.TrimPrefix(line, "token: ")
		case strings.HasPrefix(line, "  "):
			o.entry += line + "\n"
		}
	}
	if o.token == "" || o.entry == "" {
		tb.Fatalf("token printed no token or no entry:\n%s", out)
	}
	return o
}

// TestRun_Token: the printed entry, pasted under tokens:, loads and accepts the printed
// token with the asked scopes.
func TestRun_Token(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		want   string // token name; "" for the default
		scopes auth.Scopes
	}{
		{"Default", nil, "", auth.ScopeRead},
		{"Named", []string{"--name", "line-app", "--scopes", "write"}, "line-app", auth.ScopeWrite},
		{"Both", []string{"--name", "ops", "--scopes", "write,read"}, "ops", auth.ScopeRead | auth.ScopeWrite},
		{"RepeatedFlag", []string{"--scopes", "read", "--scopes", "write"}, "", auth.ScopeRead | auth.ScopeWrite},
		{"YAMLSpecialName", []string{"--name", `a: "b" #c`}, `a: "b" #c`, auth.ScopeRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := MustRunIn(t, nil, append([]string{"token"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			o := parseTokenOutput(t, out)
			ts, err := auth.ParseTokens([]byte("tokens:\n" + o.entry))
			if err != nil {
				t.Fatalf("the printed entry does not load: %v\n%s", err, o.entry)
			}
			name, scopes, ok := ts.Check(o.token)
			if !ok || scopes != tt.scopes {
				t.Fatalf("Check(printed token) = %q, %v, %v; want scopes %v", name, scopes, ok, tt.scopes)
			}
			want := tt.want
			if want == "" {
				want = "token-" + auth.HashToken(o.token)[:8]
			}
			if name != want {
				t.Fatalf("token name = %q, want %q", name, want)
			}
			if strings.Contains(out, auth.HashToken(o.token)) != true || strings.Count(out, o.token) != 1 {
				t.Fatalf("output should hold the token once and its hash:\n%s", out)
			}
		})
	}
	a, _, errA := MustRunIn(t, nil, "token")
	b, _, errB := MustRunIn(t, nil, "token")
	if errA != nil || errB != nil || parseTokenOutput(t, a).token == parseTokenOutput(t, b).token {
		t.Fatal("two runs printed the same token")
	}
}

func TestRun_TokenRefused(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--scopes", "admin"},
		{"--scopes", ""},
		{"--name", "tab\there"},
		{"--name", strings.Repeat("n", 200)},
	} {
		out, _, err := MustRunIn(t, nil, append([]string{"token"}, args...)...)
		if err == nil || out != "" {
			t.Errorf("token %q: printed %q, error %v; want an error and nothing printed", args, out, err)
		}
	}
}

// TestReadPasswordLine: the password is the first line of piped input, without its
// line end.
func TestReadPasswordLine(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"correct horse\n":         "correct horse",
		"correct horse\r\n":       "correct horse",
		"correct horse":           "correct horse",
		"first\nsecond\n":         "first",
		"  spaced out  \n":        "  spaced out  ",
		"tab\tinside\n":           "tab\tinside",
		"\xff\xfe\n":              "\xff\xfe",
		strings.Repeat("y", 1024): strings.Repeat("y", 1024),
	} {
		got, err := readPasswordLine(strings.NewReader(in))
		if err != nil || string(got) != want {
			t.Errorf("readPasswordLine(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := readPasswordLine(errReader{}); !errors.Is(err, errRead) {
		t.Fatalf("read error not returned: %v", err)
	}
	pw, err := readPasswordLine(strings.NewReader(strings.Repeat("y", maxPasswordInput) + "\r\n"))
	if err != nil || len(pw) != maxPasswordInput {
		t.Fatalf("a line of exactly %d bytes: %d bytes, %v", maxPasswordInput, len(pw), err)
	}
	for _, in := range []string{strings.Repeat("y", maxPasswordInput+1) + "\n", strings.Repeat("y", maxPasswordInput+1)} {
		if _, err := readPasswordLine(strings.NewReader(in)); !errors.Is(err, errPasswordTooLong) {
			t.Fatalf("a line of %d bytes: %v", len(in), err)
		}
	}
}

var errRead = errors.New("read failed")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errRead }
