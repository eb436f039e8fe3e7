package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/arina-dev/arina"

// listedPackage is what the architecture tests read of go list -json.
type listedPackage struct {
	ImportPath string
	Imports    []string
}

// goList runs go list in the module's root with args and decodes the packages it
// prints (-json).
func goList(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to list the packages with")
		}
	}
	cmd := exec.Command(goBin, append([]string{"list", "-json"}, args...)...)
	cmd.Dir = ".."
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// docArrows reads the arrows block of docs/ARCHITECTURE.md: package -> its imports.
func docArrows(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	arrows := make(map[string][]string)
	in := false
	for s := bufio.NewScanner(f); s.Scan(); {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "```arrows":
			in = true
		case in && line == "```":
			in = false
		case in && line != "":
			from, to, ok := strings.Cut(line, "->")
			if !ok {
				t.Fatalf("docs/ARCHITECTURE.md: arrow line %q has no ->", line)
			}
			from = strings.TrimSpace(from)
			if _, dup := arrows[from]; dup {
				t.Fatalf("docs/ARCHITECTURE.md: %s has two arrow lines", from)
			}
			deps := strings.Fields(to)
			slices.Sort(deps)
			arrows[from] = deps
		}
	}
	if len(arrows) == 0 {
		t.Fatal("docs/ARCHITECTURE.md has no ```arrows block")
	}
	return arrows
}

// TestArchitecture_ArrowsMatchImports: the arrows in docs/ARCHITECTURE.md are exactly
// the imports between this module's packages (non-test code), for every package but
// the test-only test/.
func TestArchitecture_ArrowsMatchImports(t *testing.T) {
	want := docArrows(t)
	got := make(map[string][]string)
	for _, p := range goList(t, "./...") {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, modulePath), "/")
		if rel == "test" || strings.HasPrefix(p.ImportPath, modulePath+"/third_party") {
			continue
		}
		deps := []string{}
		for _, imp := range p.Imports {
			if r, ok := strings.CutPrefix(imp, modulePath+"/"); ok {
				deps = append(deps, r)
			}
		}
		slices.Sort(deps)
		got[rel] = deps
	}
	for pkg, deps := range got {
		doc, ok := want[pkg]
		if !ok {
			t.Errorf("docs/ARCHITECTURE.md has no arrow line for %s (it imports %v)", pkg, deps)
			continue
		}
		if !slices.Equal(doc, deps) {
			t.Errorf("%s imports %v; docs/ARCHITECTURE.md says %v", pkg, deps, doc)
		}
	}
	for pkg := range want {
		if _, ok := got[pkg]; !ok {
			t.Errorf("docs/ARCHITECTURE.md has an arrow line for %s, which is not a package", pkg)
		}
	}
}

// TestArchitecture_LowerTestsWithoutDaemon: the tests of the store and the TLS
// configuration compile without the daemon (their helpers are in internal/testutil).
func TestArchitecture_LowerTestsWithoutDaemon(t *testing.T) {
	for _, pkg := range []string{"./store", "./store/durable", "./internal/tlsconf", "./store/redis"} {
		for _, p := range goList(t, "-deps", "-test", pkg) {
			if strings.HasPrefix(p.ImportPath, modulePath+"/internal/daemon") {
				t.Errorf("the tests of %s compile %s", pkg, p.ImportPath)
			}
		}
	}
}

// TestArchitecture_OnlyTheEngineLinksPebble: the parts that handle events and serve
// them (and the Redis store) do not link the storage engine; only store/durable and
// what assembles it do (issue #19).
func TestArchitecture_OnlyTheEngineLinksPebble(t *testing.T) {
	for _, p := range goList(t, "-deps", "./store", "./ingest", "./feed", "./api", "./history", "./store/redis") {
		if strings.HasPrefix(p.ImportPath, "github.com/cockroachdb/pebble") {
			t.Errorf("%s is linked by the parts that should not link Pebble", p.ImportPath)
		}
	}
}
