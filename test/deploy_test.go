package test

// Tests of the deployment files in deploy/: what can be checked without Docker or a
// Kubernetes cluster. systemd-analyze verifies the unit, the built binary checks every
// configuration the files hand it, a real mosquitto loads the Compose broker's config,
// and a running daemon exports every metric the Grafana dashboard queries. Helpers in
// this file are prefixed with "deploy" so they cannot collide with those of the other
// files of package test.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
)

// deployDir is deploy/ seen from this package's directory (go test runs tests there).
const deployDir = "../deploy"

// deployPendingKeys are configuration keys being added to arina while these files
// already use them (as ARINA_* variables). Until cmd/arina knows them, it ignores their
// variables, so `arina check-config` cannot vouch for them yet. Once a key is wired it
// appears in configs/arina.example.yaml, and TestDeploy_ConfigsAccepted checks its
// values for real; then delete it here.
var deployPendingKeys = []string{}

// deployDefaultShutdownTimeout is ingest.shutdown_timeout when nothing sets it.
const deployDefaultShutdownTimeout = 30 * time.Second

// deployRead reads a file under deploy/.
func deployRead(tb testing.TB, rel string) []byte {
	tb.Helper()
	return deployReadFile(tb, filepath.Join(deployDir, rel))
}

// deployYAML decodes every document of a YAML stream into a node, failing on any syntax
// error or duplicate key.
func deployYAML(tb testing.TB, name string, data []byte) []*yaml.Node {
	tb.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			tb.Fatalf("%s: %v", name, err)
		}
		docs = append(docs, &n)
	}
}

// deployStrict decodes YAML into v, failing on fields v does not declare: the structs
// below list exactly the fields the deploy files may use.
func deployStrict(tb testing.TB, name string, data []byte, v any) {
	tb.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}

// deployConfigKeys returns the configuration keys settable by environment variable:
// every scalar leaf of configs/arina.example.yaml (lists are file-only) and the
// pending keys.
func deployConfigKeys(tb testing.TB) map[string]bool {
	tb.Helper()
	data, err := os.ReadFile("../configs/arina.example.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		tb.Fatalf("configs/arina.example.yaml: %v", err)
	}
	keys := make(map[string]bool)
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, sub := range v {
				walk(strings.TrimPrefix(prefix+"."+k, "."), sub)
			}
		case []any:
			// Lists of objects are file only (reactions, bridge.upstreams); lists of
			// strings take a comma-separated variable (store.redis.addrs).
			if prefix != "reactions" && prefix != "bridge.upstreams" {
				keys[prefix] = true
			}
		default:
			keys[prefix] = true
		}
	}
	walk("", m)
	if len(keys) < 10 {
		tb.Fatalf("only %d keys in configs/arina.example.yaml: %v", len(keys), keys)
	}
	for _, k := range deployPendingKeys {
		keys[k] = true
	}
	return keys
}

// deployEnvName is the environment variable of a configuration key.
func deployEnvName(key string) string {
	return "ARINA_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

var deployEnvRef = regexp.MustCompile(`\bARINA_[A-Z0-9_]*[A-Z0-9]`)

// TestDeploy_EnvNames: every ARINA_* variable named anywhere in deploy/ (files,
// comments, docs) is the variable of a real configuration key, so a typo, which arina
// would silently ignore, fails here.
func TestDeploy_EnvNames(t *testing.T) {
	known := make(map[string]bool)
	for k := range deployConfigKeys(t) {
		known[deployEnvName(k)] = true
	}
	seen := 0
	err := filepath.WalkDir(deployDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, name := range deployEnvRef.FindAllString(line, -1) {
				seen++
				if !known[name] {
					t.Errorf("%s:%d: %s is not the variable of any configuration key", path, i+1, name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 10 {
		t.Fatalf("found only %d ARINA_* references in deploy/", seen)
	}
}

// --- systemd ---

// deployUnit is a parsed systemd unit file: section → key → values in order.
type deployUnit map[string]map[string][]string

func deployParseUnit(tb testing.TB, data []byte) deployUnit {
	tb.Helper()
	u := deployUnit{}
	section := ""
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				tb.Fatalf("arina.service:%d: cannot parse %q", i+1, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one returns the last value of a key ("" if unset), as systemd applies it.
func (u deployUnit) one(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// env returns the Environment= assignments of the [Service] section.
func (u deployUnit) env(tb testing.TB) map[string]string {
	tb.Helper()
	env := map[string]string{}
	for _, v := range u["Service"]["Environment"] {
		for _, kv := range strings.Fields(v) {
			k, val, ok := strings.Cut(strings.Trim(kv, `"`), "=")
			if !ok {
				tb.Fatalf("Environment=%s: want NAME=VALUE", v)
			}
			env[k] = val
		}
	}
	return env
}

// TestDeploy_SystemdUnit: the unit is hardened as intended, systemd-analyze verifies it
// without a warning (with ExecStart pointing at a freshly built arina) and rates its
// sandbox "OK" or better, and the sysusers entry creates the user it runs as.
func TestDeploy_SystemdUnit(t *testing.T) {
	data := deployRead(t, "arina.service")
	u := deployParseUnit(t, data)

	exec0 := strings.Fields(u.one("Service", "ExecStart"))
	if len(exec0) < 2 || exec0[0] != "/usr/local/bin/arina" || exec0[1] != "serve" {
		t.Errorf("ExecStart=%v, want /usr/local/bin/arina serve ...", exec0)
	}
	want := map[string]string{
		"Type":                    "simple",
		"Restart":                 "on-failure",
		"StateDirectory":          "arina",
		"CapabilityBoundingSet":   "",
		"AmbientCapabilities":     "",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectKernelLogs":       "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"UMask":                   "0077",
		"KillSignal":              "SIGTERM",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		if _, set := u["Service"][k]; !set || u.one("Service", k) != v {
			t.Errorf("[Service] %s=%q (set: %v), want %q", k, u.one("Service", k), set, v)
		}
	}
	if !slices.Contains(u["Service"]["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%v, want @system-service among them", u["Service"]["SystemCallFilter"])
	}
	// One way to get the user: a real system user (so that secret files can be owned
	// root:arina and re-read on reload), not DynamicUser= as well.
	user := u.one("Service", "User")
	if user == "" || user == "root" || u.one("Service", "DynamicUser") == "yes" {
		t.Errorf("User=%q DynamicUser=%q: want a dedicated real user and no DynamicUser", user, u.one("Service", "DynamicUser"))
	}
	env := u.env(t)
	if dir := env["ARINA_STORE_DATA_DIR"]; !strings.HasPrefix(dir, "/var/lib/"+u.one("Service", "StateDirectory")) {
		t.Errorf("ARINA_STORE_DATA_DIR=%q is not under the StateDirectory, the only writable path", dir)
	}
	// /etc/arina/arina.yaml starts as configs/arina.example.yaml (see the unit's header).
	stopAfter := deployShutdownTimeout(t, deployReadFile(t, "../configs/arina.example.yaml"), env)
	if stop, err := time.ParseDuration(u.one("Service", "TimeoutStopSec") + "s"); err != nil || stop <= stopAfter {
		t.Errorf("TimeoutStopSec=%s, want more than ingest.shutdown_timeout (%v)", u.one("Service", "TimeoutStopSec"), stopAfter)
	}

	analyze := testutil.NeedProgram(t, "systemd-analyze", "systemd")
	bin := crashBuild(t)
	unit := filepath.Join(t.TempDir(), "arina.service")
	patched := strings.Replace(string(data), "ExecStart=/usr/local/bin/arina ", "ExecStart="+bin+" ", 1)
	if err := os.WriteFile(unit, []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	// Unknown keys and bad values are only warnings (exit 0) naming the file.
	if err != nil || strings.Contains(string(out), "arina.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	} else if len(out) > 0 {
		t.Logf("systemd-analyze verify said (about other units):\n%s", out)
	}
	// Exposure is rated 0 (safe) to 10 (unsafe); --threshold is ten times that.
	out, err = exec.Command(analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 or failure: %v\n%s", err, out)
	}

	// The user comes from deploy/arina.sysusers; --root keeps the dry run off /etc.
	sysusers := testutil.NeedProgram(t, "systemd-sysusers", "systemd")
	abs, err := filepath.Abs(filepath.Join(deployDir, "arina.sysusers"))
	if err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(sysusers, "--root="+t.TempDir(), "--dry-run", abs).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("Creating user '%s'", user)) ||
		!strings.Contains(string(out), fmt.Sprintf("Creating group '%s'", u.one("Service", "Group"))) {
		t.Errorf("systemd-sysusers --dry-run deploy/arina.sysusers: %v, want it to create user %q and group %q:\n%s",
			err, user, u.one("Service", "Group"), out)
	}
}

// deployReadFile reads a file, path relative to this package.
func deployReadFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// deployShutdownTimeout is the ingest.shutdown_timeout a configuration file and
// environment give.
func deployShutdownTimeout(tb testing.TB, config []byte, env map[string]string) time.Duration {
	tb.Helper()
	s := env["ARINA_INGEST_SHUTDOWN_TIMEOUT"]
	if s == "" {
		var c struct {
			Ingest struct {
				ShutdownTimeout string `yaml:"shutdown_timeout"`
			} `yaml:"ingest"`
		}
		if err := yaml.Unmarshal(config, &c); err != nil {
			tb.Fatalf("reading ingest.shutdown_timeout: %v", err)
		}
		s = c.Ingest.ShutdownTimeout
	}
	if s == "" {
		return deployDefaultShutdownTimeout
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		tb.Fatalf("ingest.shutdown_timeout %q: %v", s, err)
	}
	return d
}

// --- Dockerfile ---

// deployDockerStage is one FROM ... stage of a Dockerfile: its base and instructions.
type deployDockerStage struct {
	from  string
	instr [][2]string // instruction (upper case), arguments
}

func (s deployDockerStage) all(instr string) []string {
	var out []string
	for _, in := range s.instr {
		if in[0] == instr {
			out = append(out, in[1])
		}
	}
	return out
}

// deployParseDockerfile returns the Dockerfile's global ARGs (before the first FROM)
// and its stages.
func deployParseDockerfile(tb testing.TB) (global []string, stages []deployDockerStage) {
	tb.Helper()
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(deployRead(tb, "Dockerfile")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		instr, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		instr, args = strings.ToUpper(instr), strings.TrimSpace(args)
		switch {
		case instr == "FROM":
			stages = append(stages, deployDockerStage{from: args})
		case len(stages) > 0:
			stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, [2]string{instr, args})
		case instr == "ARG":
			global = append(global, args)
		default:
			tb.Fatalf("Dockerfile: %s before FROM", instr)
		}
	}
	if cur.Len() > 0 {
		tb.Fatalf("Dockerfile ends in a line continuation")
	}
	return global, stages
}

// deployDockerImage is what the Dockerfile's final image runs with.
type deployDockerImage struct {
	env         map[string]string
	entrypoint  []string
	healthcheck []string // the HEALTHCHECK CMD, exec form
	binary      string   // where the arina binary is copied
}

// deployDockerfile checks the Dockerfile's shape and returns its final image's setup.
func deployDockerfile(tb testing.TB) deployDockerImage {
	tb.Helper()
	global, stages := deployParseDockerfile(tb)
	if len(stages) < 2 {
		tb.Fatalf("Dockerfile has %d stages, want a builder and a final image", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// Builder: the Go of go.mod, a static, trimmed, stripped binary.
	goVersion := ""
	for _, a := range global {
		if v, ok := strings.CutPrefix(a, "GO_VERSION="); ok {
			goVersion = v
		}
	}
	if !strings.HasPrefix(build.from, "golang:") {
		tb.Errorf("builder FROM %s, want golang:", build.from)
	}
	gomod := string(deployReadFile(tb, "../go.mod"))
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)(\.\d+)?$`).FindStringSubmatch(gomod)
	if m == nil || (goVersion != m[1] && goVersion != m[1]+m[2]) {
		tb.Errorf("ARG GO_VERSION=%s does not match go.mod's go line %v", goVersion, m)
	}
	buildSteps := strings.Join(append(build.all("RUN"), build.all("ENV")...), "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w`, "./cmd/arina"} {
		if !strings.Contains(buildSteps, want) {
			tb.Errorf("builder stage lacks %q", want)
		}
	}

	// Final image: no Go toolchain, a non-root user, both ports, a probe without a shell.
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		tb.Errorf("final FROM %s, want distroless static or scratch", final.from)
	}
	users := final.all("USER")
	if len(users) == 0 {
		tb.Errorf("final image has no USER: it would run as root")
	} else if u, _, _ := strings.Cut(users[len(users)-1], ":"); u == "0" || u == "root" {
		tb.Errorf("USER %s: want a non-root user", users[len(users)-1])
	}
	exposed := strings.Fields(strings.Join(final.all("EXPOSE"), " "))
	for _, p := range []string{"1883", "4000"} {
		if !slices.Contains(exposed, p) {
			tb.Errorf("EXPOSE %v lacks %s", exposed, p)
		}
	}
	img := deployDockerImage{env: map[string]string{}}
	for _, c := range final.all("COPY") {
		f := strings.Fields(c)
		if len(f) >= 2 && strings.HasSuffix(f[len(f)-2], "/arina") {
			img.binary = f[len(f)-1]
		}
	}
	for _, e := range final.all("ENV") {
		for _, kv := range strings.Fields(e) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				tb.Fatalf("ENV %s: want NAME=VALUE", e)
			}
			img.env[k] = v
		}
	}
	if eps := final.all("ENTRYPOINT"); len(eps) == 1 {
		if err := json.Unmarshal([]byte(eps[0]), &img.entrypoint); err != nil {
			tb.Errorf("ENTRYPOINT %s: want the exec form: %v", eps[0], err)
		}
	}
	if hcs := final.all("HEALTHCHECK"); len(hcs) == 1 {
		if _, cmd, ok := strings.Cut(hcs[0], "CMD "); !ok || json.Unmarshal([]byte(cmd), &img.healthcheck) != nil {
			tb.Errorf("HEALTHCHECK %s: want CMD in the exec form (the image has no shell)", hcs[0])
		}
	} else {
		tb.Errorf("final image has %d HEALTHCHECKs, want 1", len(hcs))
	}
	if img.binary == "" || len(img.entrypoint) == 0 || img.entrypoint[0] != img.binary ||
		len(img.healthcheck) < 2 || img.healthcheck[0] != img.binary {
		tb.Errorf("binary copied to %q, ENTRYPOINT %q, HEALTHCHECK %q: want all the same binary",
			img.binary, img.entrypoint, img.healthcheck)
	}
	return img
}

// TestDeploy_Dockerfile: a multi-stage build of a static binary from the Go version of
// go.mod into a non-root distroless image exposing both ports, with a shell-free
// health check.
func TestDeploy_Dockerfile(t *testing.T) {
	img := deployDockerfile(t)
	for k, v := range map[string]string{"ARINA_MQTT_LISTEN": "0.0.0.0:1883", "ARINA_HTTP_LISTEN": "0.0.0.0:4000"} {
		if img.env[k] != v {
			t.Errorf("ENV %s=%q, want %q: a container is reached through its network interface", k, img.env[k], v)
		}
	}
}

// TestDeploy_HealthCheckCommand: the image's HEALTHCHECK command, run with the
// environment a container has, succeeds against a running arina and fails once it
// stopped.
func TestDeploy_HealthCheckCommand(t *testing.T) {
	img := deployDockerfile(t)
	bin := crashBuild(t)
	p := crashStart(t, bin, t.TempDir())
	probe := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, img.healthcheck[1:]...)
		cmd.Env = append(deployCleanEnv(), "ARINA_HTTP_LISTEN="+strings.TrimPrefix(p.url, "http://"))
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := probe()
	if err != nil {
		t.Fatalf("HEALTHCHECK %q against a running arina: %v\n%s", img.healthcheck, err, out)
	}
	p.stop(t)
	if out, err := probe(); err == nil {
		t.Fatalf("HEALTHCHECK %q succeeded with arina stopped:\n%s", img.healthcheck, out)
	}
}

// deployCleanEnv is this process's environment without ARINA_* settings.
func deployCleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARINA_") {
			env = append(env, kv)
		}
	}
	return env
}

// --- Compose ---

// deployCompose is the part of the Compose specification compose.yaml may use.
type deployCompose struct {
	Name     string                      `yaml:"name"`
	Services map[string]deployComposeSvc `yaml:"services"`
	Volumes  map[string]any              `yaml:"volumes"`
	Ext      map[string]any              `yaml:",inline"` // any other top-level key; only x-* are allowed
}

type deployComposeSvc struct {
	Image           string            `yaml:"image"`
	Build           *deployBuild      `yaml:"build"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Volumes         []string          `yaml:"volumes"`
	Ports           []string          `yaml:"ports"`
	Hostname        string            `yaml:"hostname"`
	ReadOnly        bool              `yaml:"read_only"`
	Tmpfs           []string          `yaml:"tmpfs"`
	CapDrop         []string          `yaml:"cap_drop"`
	SecurityOpt     []string          `yaml:"security_opt"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Restart         string            `yaml:"restart"`
	Healthcheck     *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

type deployBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

// deployInterpolate applies Compose's ${NAME:-default} with NAME unset.
func deployInterpolate(s string) string {
	return regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}`).ReplaceAllString(s, "$1")
}

// deployArinaNodes returns the Compose services built from deploy/Dockerfile.
func deployArinaNodes(c deployCompose) []string {
	var nodes []string
	for name, s := range c.Services {
		if s.Build != nil && filepath.ToSlash(s.Build.Dockerfile) == "deploy/Dockerfile" {
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	return nodes
}

// deployBindSource maps a container path to the file under deploy/ a service mounts
// there, or "".
func deployBindSource(s deployComposeSvc, target string) string {
	for _, v := range s.Volumes {
		f := strings.Split(v, ":")
		if len(f) >= 2 && f[1] == target && strings.HasPrefix(f[0], ".") {
			return filepath.Join(deployDir, f[0])
		}
	}
	return ""
}

// deployConfigFlag returns the value of --config in a command line, or "".
func deployConfigFlag(args []string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v
		}
		if a == "--config" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// TestDeploy_Compose: compose.yaml uses only known fields and describes Redis with an
// append-only file, a broker and two arina nodes on the Redis store, each healthy
// before what depends on it starts, each with its own host ports.
func TestDeploy_Compose(t *testing.T) {
	var c deployCompose
	deployStrict(t, "compose.yaml", deployRead(t, "compose.yaml"), &c)
	for k := range c.Ext {
		if !strings.HasPrefix(k, "x-") {
			t.Errorf("compose.yaml: unknown top-level field %q", k)
		}
	}
	img := deployDockerfile(t)

	redis, ok := c.Services["redis"]
	if !ok || !strings.Contains(strings.Join(redis.Command, " "), "--appendonly yes") {
		t.Errorf("redis service %+v: want redis-server --appendonly yes", redis)
	}
	if _, ok := c.Services["mosquitto"]; !ok {
		t.Errorf("no mosquitto service (the factory broker)")
	}
	nodes := deployArinaNodes(c)
	if len(nodes) < 2 {
		t.Fatalf("arina nodes (built from deploy/Dockerfile) = %v, want 2", nodes)
	}

	hostPorts := map[string]string{}
	for name, s := range c.Services {
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || (s.Healthcheck.Test[0] != "CMD" && s.Healthcheck.Test[0] != "CMD-SHELL") {
			t.Errorf("%s: healthcheck %+v, want a test", name, s.Healthcheck)
		}
		if s.Restart == "" || s.Restart == "no" {
			t.Errorf("%s: restart %q, want a restart policy", name, s.Restart)
		}
		if s.Image == "" && s.Build == nil {
			t.Errorf("%s: neither image nor build", name)
		}
		for _, p := range s.Ports {
			f := strings.Split(p, ":")
			if len(f) < 2 {
				t.Errorf("%s: port %q: publish host:container explicitly", name, p)
				continue
			}
			host := strings.Join(f[:len(f)-1], ":")
			if other, dup := hostPorts[host]; dup {
				t.Errorf("host port %s published by %s and %s", host, other, name)
			}
			hostPorts[host] = name
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(deployDir, src)); err != nil {
					t.Errorf("%s: bind mount %s: %v", name, v, err)
				}
			} else if _, ok := c.Volumes[src]; !ok && !strings.HasPrefix(src, "/") {
				t.Errorf("%s: volume %q is not declared", name, src)
			}
		}
	}

	for _, name := range nodes {
		s := c.Services[name]
		if _, err := os.Stat(filepath.Join(deployDir, s.Build.Context, "go.mod")); err != nil {
			t.Errorf("%s: build context %s does not hold go.mod: %v", name, s.Build.Context, err)
		}
		if _, err := os.Stat(filepath.Join(deployDir, s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: dockerfile: %v", name, err)
		}
		if s.Environment["ARINA_STORE_BACKEND"] != "redis" {
			t.Errorf("%s: ARINA_STORE_BACKEND=%q, want redis", name, s.Environment["ARINA_STORE_BACKEND"])
		}
		for _, addr := range strings.Split(s.Environment["ARINA_STORE_REDIS_ADDRS"], ",") {
			host, _, err := net.SplitHostPort(addr)
			if _, ok := c.Services[host]; err != nil || !ok {
				t.Errorf("%s: ARINA_STORE_REDIS_ADDRS address %q is not host:port of a service", name, addr)
			}
			if d := s.DependsOn[host].Condition; d != "service_healthy" {
				t.Errorf("%s: depends_on %s condition %q, want service_healthy", name, host, d)
			}
		}
		if d := s.DependsOn["mosquitto"].Condition; d != "service_healthy" {
			t.Errorf("%s: depends_on mosquitto condition %q, want service_healthy", name, d)
		}
		if want := append([]string{"CMD"}, img.healthcheck...); s.Healthcheck == nil || !slices.Equal(s.Healthcheck.Test, want) {
			t.Errorf("%s: healthcheck %+v, want the image's %q", name, s.Healthcheck, want)
		}
		published := map[string]bool{}
		for _, p := range s.Ports {
			published[p[strings.LastIndex(p, ":")+1:]] = true
		}
		if !published["1883"] || !published["4000"] {
			t.Errorf("%s: ports %v, want 1883 and 4000 published", name, s.Ports)
		}
		cfgPath := deployConfigFlag(s.Command)
		cfgFile := deployBindSource(s, cfgPath)
		if cfgPath == "" || cfgFile == "" {
			t.Errorf("%s: --config %q is not a file mounted from deploy/", name, cfgPath)
			continue
		}
		grace, err := time.ParseDuration(s.StopGracePeriod)
		if stop := deployShutdownTimeout(t, deployReadFile(t, cfgFile), s.Environment); err != nil || grace <= stop {
			t.Errorf("%s: stop_grace_period %q, want more than ingest.shutdown_timeout (%v)", name, s.StopGracePeriod, stop)
		}
	}
}

// TestDeploy_ComposeBroker: the Compose broker's configuration loads in a real
// Mosquitto 2 and lets an anonymous client connect.
func TestDeploy_ComposeBroker(t *testing.T) {
	mosquitto := testutil.NeedProgram(t, "mosquitto", "mosquitto")
	conf := string(deployRead(t, "compose/mosquitto.conf"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	if !strings.Contains(conf, "\nlistener 1883\n") {
		t.Fatalf("compose/mosquitto.conf has no \"listener 1883\" line")
	}
	conf = strings.Replace(conf, "\nlistener 1883\n", "\nlistener "+port+" 127.0.0.1\n", 1)
	path := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(mosquitto, "-c", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	testutil.WaitFor(t, 10*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("mosquitto exited: %v\n%s", err, out.String())
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	})
	MustConnect311(t, addr, "deploy-anonymous") // fails the test if refused
}

// --- Kubernetes ---

type deployK8sMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
}

type deployK8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type deployK8sKeyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type deployK8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef     *deployK8sKeyRef `yaml:"secretKeyRef"`
			ConfigMapKeyRef  *deployK8sKeyRef `yaml:"configMapKeyRef"`
			ResourceFieldRef *struct {
				Resource string `yaml:"resource"`
			} `yaml:"resourceFieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	StartupProbe   *deployK8sProbe `yaml:"startupProbe"`
	LivenessProbe  *deployK8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *deployK8sProbe `yaml:"readinessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		SubPath   string `yaml:"subPath"`
	} `yaml:"volumeMounts"`
}

type deployK8sItems []struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}

type deployK8sDeployment struct {
	Spec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []deployK8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name  string         `yaml:"name"`
						Items deployK8sItems `yaml:"items"`
					} `yaml:"configMap"`
					Secret *struct {
						SecretName string         `yaml:"secretName"`
						Items      deployK8sItems `yaml:"items"`
					} `yaml:"secret"`
					EmptyDir any `yaml:"emptyDir"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type deployK8sService struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type deployK8sPDB struct {
	Spec struct {
		MinAvailable any `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	} `yaml:"spec"`
}

type deployK8sData struct {
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

// deployK8s holds the manifests of deploy/k8s by kind and name.
type deployK8s struct {
	docs  map[string]map[string]*yaml.Node // kind → name → document
	files []string                         // manifest files, kustomization.yaml aside
}

// deployK8sAllowed are the kinds deploy/k8s may hold, with their API versions.
var deployK8sAllowed = map[string]string{
	"ConfigMap": "v1", "Secret": "v1", "Service": "v1",
	"Deployment": "apps/v1", "PodDisruptionBudget": "policy/v1",
}

func deployLoadK8s(tb testing.TB) deployK8s {
	tb.Helper()
	k := deployK8s{docs: map[string]map[string]*yaml.Node{}}
	paths, err := filepath.Glob(filepath.Join(deployDir, "k8s", "*"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, path := range paths {
		name := filepath.Base(path)
		if name == "kustomization.yaml" {
			continue
		}
		if filepath.Ext(name) != ".yaml" {
			tb.Errorf("deploy/k8s/%s: want only .yaml files", name)
			continue
		}
		k.files = append(k.files, name)
		for i, doc := range deployYAML(tb, name, deployReadFile(tb, path)) {
			var m deployK8sMeta
			if err := doc.Decode(&m); err != nil {
				tb.Fatalf("%s document %d: %v", name, i+1, err)
			}
			where := fmt.Sprintf("%s document %d (%s %s)", name, i+1, m.Kind, m.Metadata.Name)
			if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
				tb.Errorf("%s: want apiVersion, kind and metadata.name", where)
			}
			if v, ok := deployK8sAllowed[m.Kind]; !ok || v != m.APIVersion {
				tb.Errorf("%s: apiVersion %q kind %q, want one of %v", where, m.APIVersion, m.Kind, deployK8sAllowed)
			}
			if m.Metadata.Namespace != "" {
				tb.Errorf("%s: metadata.namespace %q; the namespace is the installer's choice", where, m.Metadata.Namespace)
			}
			if k.docs[m.Kind] == nil {
				k.docs[m.Kind] = map[string]*yaml.Node{}
			}
			if _, dup := k.docs[m.Kind][m.Metadata.Name]; dup {
				tb.Errorf("%s: defined twice", where)
			}
			k.docs[m.Kind][m.Metadata.Name] = doc
		}
	}
	return k
}

// one decodes the only object of a kind into v and returns its name.
func (k deployK8s) one(tb testing.TB, kind string, v any) string {
	tb.Helper()
	if len(k.docs[kind]) != 1 {
		tb.Fatalf("%d %s objects, want 1", len(k.docs[kind]), kind)
	}
	for name, doc := range k.docs[kind] {
		if err := doc.Decode(v); err != nil {
			tb.Fatalf("%s %s: %v", kind, name, err)
		}
		return name
	}
	return ""
}

// data returns the keys of a ConfigMap or Secret, or nil if there is none so named.
func (k deployK8s) data(tb testing.TB, kind, name string) map[string]string {
	tb.Helper()
	doc, ok := k.docs[kind][name]
	if !ok {
		return nil
	}
	var d deployK8sData
	if err := doc.Decode(&d); err != nil {
		tb.Fatalf("%s %s: %v", kind, name, err)
	}
	all := map[string]string{}
	for key, v := range d.Data {
		all[key] = v
	}
	for key, v := range d.StringData {
		all[key] = v
	}
	return all
}

// deployK8sContainerEnv is the container's environment as arina sees it: the image's
// ENV, then the container's env, with values from Secrets replaced by a placeholder
// and resource fields resolved.
func deployK8sContainerEnv(tb testing.TB, img deployDockerImage, c deployK8sContainer) map[string]string {
	tb.Helper()
	env := map[string]string{}
	for k, v := range img.env {
		env[k] = v
	}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		switch {
		case e.ValueFrom == nil:
		case e.ValueFrom.ResourceFieldRef != nil:
			kind, res, _ := strings.Cut(e.ValueFrom.ResourceFieldRef.Resource, ".")
			q := map[string]map[string]string{"limits": c.Resources.Limits, "requests": c.Resources.Requests}[kind][res]
			env[e.Name] = strconv.FormatInt(deployQuantity(tb, q), 10)
		default:
			env[e.Name] = "placeholder"
		}
	}
	return env
}

// deployQuantity converts a Kubernetes quantity such as "1Gi" or "512M" to a number.
func deployQuantity(tb testing.TB, q string) int64 {
	tb.Helper()
	for i, suffix := range []string{"Ki", "Mi", "Gi", "Ti"} {
		if n, ok := strings.CutSuffix(q, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				tb.Fatalf("quantity %q: %v", q, err)
			}
			return v << (10 * (i + 1))
		}
	}
	mult := int64(1)
	for _, s := range []struct {
		suffix string
		mult   int64
	}{{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}} {
		if n, ok := strings.CutSuffix(q, s.suffix); ok {
			q, mult = n, s.mult
			break
		}
	}
	v, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		tb.Fatalf("quantity %q: want an integer with a binary or decimal suffix: %v", q, err)
	}
	return v * mult
}

// deployK8sConfigFile returns the ConfigMap key mounted at the container's --config.
func deployK8sConfigFile(tb testing.TB, k deployK8s, d deployK8sDeployment, c deployK8sContainer) []byte {
	tb.Helper()
	path := deployConfigFlag(append(c.Command, c.Args...))
	for _, m := range c.VolumeMounts {
		if m.MountPath != path && !(strings.HasPrefix(path, m.MountPath+"/") && m.SubPath == "") {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			key := m.SubPath
			if key == "" {
				key = strings.TrimPrefix(path, m.MountPath+"/")
			}
			for _, it := range v.ConfigMap.Items {
				if it.Path == key {
					key = it.Key
				}
			}
			data := k.data(tb, "ConfigMap", v.ConfigMap.Name)
			if s, ok := data[key]; ok {
				return []byte(s)
			}
		}
	}
	tb.Fatalf("--config %q is not a ConfigMap key mounted in the container", path)
	return nil
}

// TestDeploy_Kubernetes: the manifests in deploy/k8s are well-formed, listed by the
// kustomization, and consistent with each other and with arina: probes on the named
// http port hit /healthz and /readyz, the pods run non-root on a read-only root with no
// capabilities, every Secret, ConfigMap and port a manifest refers to exists, the
// Service and the PodDisruptionBudget select the Deployment's pods, and the pods get
// more time to stop than arina takes to drain.
func TestDeploy_Kubernetes(t *testing.T) {
	k := deployLoadK8s(t)

	var kust struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Namespace  string   `yaml:"namespace"`
		Resources  []string `yaml:"resources"`
		Images     []any    `yaml:"images"`
	}
	deployStrict(t, "kustomization.yaml", deployRead(t, "k8s/kustomization.yaml"), &kust)
	if kust.Kind != "Kustomization" || !slices.Equal(slices.Sorted(slices.Values(kust.Resources)), k.files) {
		t.Errorf("kustomization.yaml: kind %q resources %v, want Kustomization listing %v", kust.Kind, kust.Resources, k.files)
	}
	// kubectl is not a Debian package and CI does not install it: use it when present.
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		out, err := exec.Command(kubectl, "kustomize", filepath.Join(deployDir, "k8s")).CombinedOutput()
		if err != nil {
			t.Errorf("kubectl kustomize deploy/k8s: %v\n%s", err, out)
		} else if n := len(deployYAML(t, "kustomize output", out)); n != len(k.docs["ConfigMap"])+len(k.docs["Secret"])+
			len(k.docs["Deployment"])+len(k.docs["Service"])+len(k.docs["PodDisruptionBudget"]) {
			t.Errorf("kubectl kustomize rendered %d objects", n)
		}
	} else {
		t.Log("kubectl not installed: kustomization not rendered")
	}

	var d deployK8sDeployment
	k.one(t, "Deployment", &d)
	spec := d.Spec.Template.Spec
	labels := d.Spec.Template.Metadata.Labels
	subset := func(sel map[string]string) bool {
		for key, v := range sel {
			if labels[key] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if d.Spec.Replicas < 2 || !subset(d.Spec.Selector.MatchLabels) {
		t.Errorf("Deployment: replicas %d, selector %v over pod labels %v", d.Spec.Replicas, d.Spec.Selector.MatchLabels, labels)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["mqtt"] != 1883 || ports["http"] != 4000 {
		t.Errorf("container ports %v, want mqtt 1883 and http 4000", ports)
	}
	for _, p := range []struct {
		name  string
		probe *deployK8sProbe
		path  string
	}{{"startupProbe", c.StartupProbe, "/healthz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port != "http" {
			t.Errorf("%s %+v, want httpGet %s on port http", p.name, p.probe, p.path)
		}
	}
	sc := c.SecurityContext
	if spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		!slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("security contexts: pod %+v, container %+v: want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL",
			spec.SecurityContext, sc)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}

	// Every reference resolves.
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil {
			data := k.data(t, "ConfigMap", v.ConfigMap.Name)
			for _, it := range v.ConfigMap.Items {
				if _, ok := data[it.Key]; !ok {
					t.Errorf("volume %s: ConfigMap %s has no key %q", v.Name, v.ConfigMap.Name, it.Key)
				}
			}
			if data == nil {
				t.Errorf("volume %s: no ConfigMap %s", v.Name, v.ConfigMap.Name)
			}
		}
		if v.Secret != nil {
			data := k.data(t, "Secret", v.Secret.SecretName)
			for _, it := range v.Secret.Items {
				if _, ok := data[it.Key]; !ok {
					t.Errorf("volume %s: Secret %s has no key %q", v.Name, v.Secret.SecretName, it.Key)
				}
			}
			if data == nil {
				t.Errorf("volume %s: no Secret %s", v.Name, v.Secret.SecretName)
			}
		}
	}
	for _, m := range c.VolumeMounts {
		if !volumes[m.Name] {
			t.Errorf("volumeMount %s: no such volume", m.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			continue
		}
		for kind, ref := range map[string]*deployK8sKeyRef{"Secret": e.ValueFrom.SecretKeyRef, "ConfigMap": e.ValueFrom.ConfigMapKeyRef} {
			if ref == nil {
				continue
			}
			if _, ok := k.data(t, kind, ref.Name)[ref.Key]; !ok {
				t.Errorf("env %s: %s %s has no key %q", e.Name, kind, ref.Name, ref.Key)
			}
		}
	}
	env := deployK8sContainerEnv(t, deployDockerfile(t), c)
	if env["ARINA_STORE_BACKEND"] != "redis" {
		t.Errorf("ARINA_STORE_BACKEND=%q, want redis", env["ARINA_STORE_BACKEND"])
	}
	for _, e := range c.Env {
		if e.Name == "ARINA_STORE_REDIS_PASSWORD" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("ARINA_STORE_REDIS_PASSWORD is not taken from a Secret")
		}
	}
	// Files named by ARINA_*_FILE variables are mounted.
	for name, path := range env {
		if !strings.HasPrefix(name, "ARINA_") || !strings.HasSuffix(name, "_FILE") {
			continue
		}
		mounted := false
		for _, m := range c.VolumeMounts {
			mounted = mounted || path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/")
		}
		if !mounted {
			t.Errorf("%s=%s: no volume is mounted there", name, path)
		}
	}
	stop := deployShutdownTimeout(t, deployK8sConfigFile(t, k, d, c), env)
	if g := spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= stop {
		t.Errorf("terminationGracePeriodSeconds %v, want more than ingest.shutdown_timeout (%v)", g, stop)
	}

	var svc deployK8sService
	svcName := k.one(t, "Service", &svc)
	if !subset(svc.Spec.Selector) {
		t.Errorf("Service %s selector %v does not select the pods (%v)", svcName, svc.Spec.Selector, labels)
	}
	svcPorts := map[int]bool{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Port] = true
		target, ok := p.TargetPort.(string)
		if _, named := ports[target]; !ok || !named {
			t.Errorf("Service port %s: targetPort %v is not a named container port", p.Name, p.TargetPort)
		}
	}
	if !svcPorts[1883] || !svcPorts[4000] {
		t.Errorf("Service ports %v, want 1883 and 4000", svcPorts)
	}

	var pdb deployK8sPDB
	k.one(t, "PodDisruptionBudget", &pdb)
	if pdb.Spec.MinAvailable != 1 || !subset(pdb.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget minAvailable %v selector %v, want 1 over the pods", pdb.Spec.MinAvailable, pdb.Spec.Selector.MatchLabels)
	}
}

// --- configurations handed to arina ---

// TestDeploy_ConfigsAccepted: `arina check-config` accepts the configuration each
// deployment gives arina: file plus environment for systemd, the image with Compose and
// the image with Kubernetes.
func TestDeploy_ConfigsAccepted(t *testing.T) {
	type setup struct {
		name   string
		config []byte
		env    map[string]string
	}
	var setups []setup

	unit := deployParseUnit(t, deployRead(t, "arina.service"))
	setups = append(setups, setup{"systemd", deployReadFile(t, "../configs/arina.example.yaml"), unit.env(t)})

	img := deployDockerfile(t)
	var c deployCompose
	deployStrict(t, "compose.yaml", deployRead(t, "compose.yaml"), &c)
	for _, name := range deployArinaNodes(c) {
		s := c.Services[name]
		env := map[string]string{}
		for k, v := range img.env {
			env[k] = v
		}
		for k, v := range s.Environment {
			env[k] = deployInterpolate(v)
		}
		file := deployBindSource(s, deployConfigFlag(s.Command))
		if file == "" {
			t.Fatalf("compose %s: no --config file mounted from deploy/", name)
		}
		setups = append(setups, setup{"compose " + name, deployReadFile(t, file), env})
	}

	k := deployLoadK8s(t)
	var d deployK8sDeployment
	k.one(t, "Deployment", &d)
	for _, ct := range d.Spec.Template.Spec.Containers {
		setups = append(setups, setup{"kubernetes " + ct.Name, deployK8sConfigFile(t, k, d, ct), deployK8sContainerEnv(t, img, ct)})
	}

	bin := crashBuild(t)
	for _, s := range setups {
		t.Run(strings.ReplaceAll(s.name, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			config := filepath.Join(dir, "arina.yaml")
			if err := os.WriteFile(config, s.config, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "check-config", "--config", config)
			cmd.Dir = dir
			cmd.Env = deployCleanEnv()
			for k, v := range s.env {
				// The users and tokens files are Secrets mounted at run time; check-config
				// opens them, so stand-ins in their format take their place.
				switch k {
				case "ARINA_MQTT_AUTH_USERS_FILE":
					v = deployAuthFixture(t, dir, "users", "users:\n  - username: gateway\n    password_hash: \""+deployBcrypt(t)+"\"\n    acl: [{topic: \"kitchen/#\", access: write}]\n")
				case "ARINA_HTTP_AUTH_TOKENS_FILE":
					v = deployAuthFixture(t, dir, "tokens", "tokens:\n  - name: app\n    sha256: \""+strings.Repeat("ab", 32)+"\"\n    scopes: [read, write]\n")
				}
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "configuration ok") {
				t.Fatalf("arina check-config with %v: %v\n%s", s.env, err, out)
			}
		})
	}
}

func deployAuthFixture(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func deployBcrypt(t *testing.T) string {
	t.Helper()
	h, err := auth.HashPassword([]byte("not-a-real-password"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// --- metrics: Prometheus and Grafana ---

// TestDeploy_Prometheus: prometheus.yml uses only known fields and every job scrapes
// /metrics on arina's HTTP port.
func TestDeploy_Prometheus(t *testing.T) {
	type relabel struct {
		SourceLabels []string `yaml:"source_labels"`
		Regex        string   `yaml:"regex"`
		Action       string   `yaml:"action"`
		TargetLabel  string   `yaml:"target_label"`
		Replacement  string   `yaml:"replacement"`
	}
	var p struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			EvaluationInterval string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string          `yaml:"targets"`
				Labels  map[string]string `yaml:"labels"`
			} `yaml:"static_configs"`
			KubernetesSDConfigs []struct {
				Role string `yaml:"role"`
			} `yaml:"kubernetes_sd_configs"`
			RelabelConfigs []relabel `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	deployStrict(t, "prometheus.yml", deployRead(t, "prometheus.yml"), &p)
	if len(p.ScrapeConfigs) == 0 {
		t.Fatal("prometheus.yml has no scrape_configs")
	}
	for _, s := range []string{p.Global.ScrapeInterval, p.Global.EvaluationInterval} {
		if _, err := time.ParseDuration(s); err != nil {
			t.Errorf("global interval %q: %v", s, err)
		}
	}
	jobs := map[string]bool{}
	for _, sc := range p.ScrapeConfigs {
		if sc.JobName == "" || jobs[sc.JobName] {
			t.Errorf("job_name %q empty or repeated", sc.JobName)
		}
		jobs[sc.JobName] = true
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q, want /metrics", sc.JobName, sc.MetricsPath)
		}
		targets := 0
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				targets++
				if _, port, err := net.SplitHostPort(target); err != nil || port != "4000" {
					t.Errorf("job %s: target %q, want host:4000", sc.JobName, target)
				}
			}
		}
		if len(sc.KubernetesSDConfigs) > 0 {
			// The pods are kept by the container port named http, which the
			// Deployment declares as 4000 (TestDeploy_Kubernetes).
			keepsHTTP := slices.ContainsFunc(sc.RelabelConfigs, func(r relabel) bool {
				return r.Action == "keep" && slices.Equal(r.SourceLabels, []string{"__meta_kubernetes_pod_container_port_name"}) && r.Regex == "http"
			})
			if !keepsHTTP {
				t.Errorf("job %s: discovers pods but does not keep only their port named http", sc.JobName)
			}
			targets++
		}
		if targets == 0 {
			t.Errorf("job %s has no targets", sc.JobName)
		}
	}
}

// deployDashboard is the part of a Grafana dashboard the test reads.
type deployDashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []deployPanel `json:"panels"`
}

type deployPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		X int `json:"x"`
		Y int `json:"y"`
		W int `json:"w"`
		H int `json:"h"`
	} `json:"gridPos"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
	Panels []deployPanel `json:"panels"` // a collapsed row's panels
}

var (
	deployMetricRef  = regexp.MustCompile(`\b(?:arina|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]`)
	deployByClause   = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	deployLegendRef  = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
	deployLabelName  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	deployScrapeOnly = map[string]bool{"instance": true, "job": true} // added by Prometheus
)

// deployExportedSeries reads GET /metrics: the series names and, for each, the label
// names its samples carry.
func deployExportedSeries(tb testing.TB, baseURL string) map[string]map[string]bool {
	tb.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		tb.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	series := map[string]map[string]bool{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, hasLabels := strings.Cut(line, "{")
		if !hasLabels {
			name, _, _ = strings.Cut(line, " ")
		}
		if series[name] == nil {
			series[name] = map[string]bool{}
		}
		if hasLabels {
			labels = labels[:max(strings.LastIndex(labels, "}"), 0)]
			for _, m := range deployLabelName.FindAllStringSubmatch(labels, -1) {
				series[name][m[1]] = true
			}
		}
	}
	return series
}

// TestDeploy_GrafanaDashboard: the dashboard is valid JSON with the panels operators
// need, and every arina_, go_ and process_ metric its queries name, with every label
// they group by or show, is exported by a running daemon once it has seen traffic
// (counters with labels appear only after their first event).
func TestDeploy_GrafanaDashboard(t *testing.T) {
	var dash deployDashboard
	dec := json.NewDecoder(bytes.NewReader(deployRead(t, "grafana/arina-dashboard.json")))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("arina-dashboard.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion < 30 {
		t.Errorf("dashboard uid %q title %q schemaVersion %d", dash.UID, dash.Title, dash.SchemaVersion)
	}
	vars := map[string]bool{}
	var exprs []string
	for _, v := range dash.Templating.List {
		vars[v.Name] = true
		if q, ok := v.Query.(map[string]any); ok {
			if s, ok := q["query"].(string); ok {
				exprs = append(exprs, s)
			}
		}
	}
	if !vars["datasource"] {
		t.Errorf("no datasource variable: the dashboard would be tied to one data source uid")
	}
	ids := map[int]bool{}
	var legends []string
	var walk func([]deployPanel)
	walk = func(panels []deployPanel) {
		for _, p := range panels {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d repeated", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("panel %q: datasource %+v, %d targets: want ${datasource} and queries", p.Title, p.Datasource, len(p.Targets))
			}
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
				legends = append(legends, tg.Expr+"\x00"+tg.LegendFormat)
			}
		}
	}
	walk(dash.Panels)

	// The panels operators asked for.
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		`sum by (source) (rate(arina_events_received_total`,
		`sum by (source, reason) (rate(arina_events_rejected_total`,
		`histogram_quantile(0.5, sum by (le, instance) (rate(arina_ingest_apply_seconds_bucket`,
		`histogram_quantile(0.99, sum by (le, instance) (rate(arina_ingest_apply_seconds_bucket`,
		`arina_ingest_batch_size_`,
		`arina_ingest_queue_length{job=~"$job", instance=~"$instance"} / arina_ingest_queue_capacity`,
		`sum by (code) (rate(arina_http_requests_total`,
		`arina_mqtt_clients_connected`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no query contains %q", want)
		}
	}

	// A daemon that has seen an MQTT event, an HTTP event, a rejected event and an
	// expiry exports every series. It has the default, durable store (the engine's
	// panels).
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.Durability = store.DurabilitySync
		o.Durable.Dir = t.TempDir()
		o.Ingest.TTL = func(r string) time.Duration {
			if r == "deploy_ttl" {
				return 10 * time.Millisecond
			}
			return 0
		}
	})
	MustPublish(t, MustConnect311(t, d.MQTTAddr, "deploy-metrics"), "kitchen/Stew/fire", 1, "add Sam")
	for body, want := range map[string]int{
		`{"type":"reaction","action":"add","content_id":"Stew","user_id":"Kim","reaction_type":"deploy_ttl"}`: http.StatusCreated,
		`{"type":"reaction","action":"bogus","content_id":"Stew","user_id":"Kim","reaction_type":"fire"}`:     http.StatusBadRequest,
	} {
		resp, err := http.Post(d.HTTPURL+"/api/v1/reaction", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s: %d, want %d", body, resp.StatusCode, want)
		}
	}
	var series map[string]map[string]bool
	testutil.WaitFor(t, 10*time.Second, func() error {
		series = deployExportedSeries(t, d.HTTPURL)
		var missing []string
		for _, name := range deployMetricRef.FindAllString(all, -1) {
			if series[name] == nil {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("the dashboard queries metrics /metrics does not export: %v", slices.Compact(slices.Sorted(slices.Values(missing))))
		}
		return nil
	})

	// Labels grouped by or shown in legends exist on a metric of the same query.
	labelsOf := func(expr string) map[string]bool {
		labels := map[string]bool{}
		for _, name := range deployMetricRef.FindAllString(expr, -1) {
			for l := range series[name] {
				labels[l] = true
			}
		}
		return labels
	}
	check := func(expr, label, where string) {
		label = strings.TrimSpace(label)
		if label != "" && !deployScrapeOnly[label] && !labelsOf(expr)[label] && deployMetricRef.MatchString(expr) {
			t.Errorf("%s: label %q is on none of the metrics of %s", where, label, expr)
		}
	}
	for _, expr := range exprs {
		for _, m := range deployByClause.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(m[1], ",") {
				check(expr, l, "grouping")
			}
		}
	}
	for _, el := range legends {
		expr, legend, _ := strings.Cut(el, "\x00")
		for _, m := range deployLegendRef.FindAllStringSubmatch(legend, -1) {
			check(expr, m[1], "legend "+strconv.Quote(legend))
		}
	}
}
