package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/arina-dev/arina/auth"
)

// maxPasswordInput bounds what passwd reads: bcrypt uses at most 72 bytes, and
// auth.HashPassword refuses more; this only stops an unbounded read.
const maxPasswordInput = 1024

// errPasswordTooLong is returned for input over maxPasswordInput.
var errPasswordTooLong = fmt.Errorf("password is over %d bytes", maxPasswordInput)

func newPasswdCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Print the bcrypt hash of a password, for mqtt.auth.users_file",
		Long: `Read a password and print its bcrypt hash, the password_hash of an entry of the users
file (mqtt.auth.users_file). From a terminal the password is asked twice, without echo
(Linux); otherwise the first line of standard input is the password (the line end is
not part of it). Passwords are 1 to 72 bytes: bcrypt ignores anything longer.`,
		Example: `  arina passwd
  arina passwd < password.txt`,
		Args: cobra.NoArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		pw, err := readNewPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer clear(pw)
		h, err := auth.HashPassword(pw)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), h)
		return nil
	}
	return cmd
}

// readNewPassword reads a password: twice without echo from a terminal (prompts go to
// prompt), or the first line of in otherwise.
func readNewPassword(in io.Reader, prompt io.Writer) ([]byte, error) {
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		pw, err := readPasswordTTY(f, prompt, "New password: ")
		if err != nil {
			return nil, fmt.Errorf("reading password: %w", err)
		}
		again, err := readPasswordTTY(f, prompt, "Repeat password: ")
		defer clear(again)
		if err != nil {
			clear(pw)
			return nil, fmt.Errorf("reading password: %w", err)
		}
		if !bytes.Equal(pw, again) {
			clear(pw)
			return nil, errors.New("the passwords do not match")
		}
		if len(pw) == 0 {
			return nil, auth.ErrEmptyPassword
		}
		return pw, nil
	}
	pw, err := readPasswordLine(in)
	if err != nil {
		return nil, fmt.Errorf("reading password from standard input: %w", err)
	}
	return pw, nil
}

// readPasswordLine reads the first line of r, without its line end ("\n" or "\r\n"),
// refusing an empty one and one over maxPasswordInput bytes.
func readPasswordLine(r io.Reader) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxPasswordInput+2), maxPasswordInput+2)
	line, err := br.ReadSlice('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errPasswordTooLong
		}
		return nil, err
	}
	if errors.Is(err, io.EOF) && len(line) > maxPasswordInput {
		return nil, errPasswordTooLong
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(line) > maxPasswordInput {
		return nil, errPasswordTooLong
	}
	if len(line) == 0 {
		return nil, auth.ErrEmptyPassword
	}
	return bytes.Clone(line), nil
}

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make a new HTTP bearer token and print its entry for http.auth.tokens_file",
		Long: `Make a new random bearer token (32 bytes from the system's secure random source) and
print it once, then the entry to add under tokens: in the tokens file
(http.auth.tokens_file). The file keeps only the token's SHA-256: keep the token itself
where the client can read it, and revoke it by deleting its entry.`,
		Example: `  arina token --name line-app --scopes write
  arina token --name board --scopes read`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	name := fs.String("name", "", `name of the token in logs (default "token-" and the start of its hash)`)
	scopes := fs.StringSlice("scopes", []string{"read"}, "what the token may do: read (GET routes, /metrics), write (POST routes), or both")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var sc auth.Scopes
		for _, s := range *scopes {
			v, err := auth.ParseScope(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("--scopes: %w", err)
			}
			sc |= v
		}
		if sc == 0 {
			return errors.New("--scopes: at least one of read, write is required")
		}
		tok, sum, err := auth.NewToken()
		if err != nil {
			return err
		}
		n := *name
		if n == "" {
			n = "token-" + sum[:8]
		}
		entry := tokenEntry(n, sum, sc)
		// The entry must load as it is printed: check it as the daemon will.
		if _, err := auth.ParseTokens([]byte("tokens:\n" + entry)); err != nil {
			return fmt.Errorf("--name %q: %w", n, err)
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "token: %s\n", tok)
		fmt.Fprintln(out, "# Give the token to the client (Authorization: Bearer <token>); it is not stored anywhere.")
		fmt.Fprintln(out, "# Add this entry under tokens: in the tokens file (http.auth.tokens_file):")
		fmt.Fprint(out, entry)
		return nil
	}
	return cmd
}

// tokenEntry is the YAML of one tokens file entry, indented to go under tokens:.
func tokenEntry(name, sum string, sc auth.Scopes) string {
	names := strings.Split(sc.String(), ",")
	slices.Sort(names)
	// strconv.Quote's escapes are YAML's double-quoted escapes too.
	return fmt.Sprintf("  - name: %s\n    sha256: %q\n    scopes: [%s]\n", strconv.Quote(name), sum, strings.Join(names, ", "))
}
