package examples

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/arinatest"
)

// ArduinoMQTTEnv names a checkout of 256dpi/arduino-mqtt (its src/ holds MQTTClient.cpp
// and lwmqtt/): with it, TestESP32_Sketch also builds badge.ino with the real library.
const ArduinoMQTTEnv = "ARINA_ARDUINO_MQTT"

// buildSketch builds examples/esp32/badge.ino for this machine with g++: the sketch,
// the stand-ins for the Arduino core in esp32/host, and either the real arduino-mqtt
// (lib, its root) or the stand-in for it (lib ""). The sketch's settings are defines.
func buildSketch(t *testing.T, lib string, defines ...string) string {
	t.Helper()
	gxx := arinatest.NeedProgram(t, "g++", "g++")
	host, err := filepath.Abs(filepath.Join("esp32", "host"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "badge")
	args := []string{"-std=c++17", "-O1", "-Wall", "-Werror", "-o", bin}
	for _, d := range defines {
		args = append(args, "-D"+d)
	}
	if lib == "" {
		args = append(args, "-I", filepath.Join(host, "standin"), "-I", host, filepath.Join(host, "main.cpp"))
	} else {
		// lwmqtt is C: compiled as C, linked with the C++ parts.
		gcc := arinatest.NeedProgram(t, "gcc", "gcc")
		cfiles, _ := filepath.Glob(filepath.Join(lib, "src", "lwmqtt", "*.c"))
		if len(cfiles) == 0 {
			t.Fatalf("%s=%s: no src/lwmqtt/*.c there", ArduinoMQTTEnv, lib)
		}
		var objs []string
		for _, c := range cfiles {
			o := filepath.Join(dir, strings.TrimSuffix(filepath.Base(c), ".c")+".o")
			run(t, gcc, "-c", "-O1", "-o", o, c)
			objs = append(objs, o)
		}
		// The library itself is not ours to hold to -Werror.
		args = slices.DeleteFunc(args, func(a string) bool { return a == "-Werror" })
		args = append(args, "-I", host, "-I", filepath.Join(lib, "src"), filepath.Join(host, "main.cpp"),
			filepath.Join(lib, "src", "MQTTClient.cpp"))
		args = append(args, objs...)
	}
	run(t, gxx, args...)
	return bin
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestESP32_Sketch builds examples/esp32/badge.ino for this machine (the ESP32
// toolchain is not installable here; the Arduino core's WiFi and Client are host
// stand-ins over a TCP socket) and runs it against a whole daemon: its QoS 1 "add"
// puts the badge in the set and it prints the count it reads from the retained
// per-reaction topic; killed (a reader that loses power), its will takes the badge
// out. Once with a stand-in for the arduino-mqtt library (always, also in CI), once
// with the real library when ARINA_ARDUINO_MQTT points at its source.
func TestESP32_Sketch(t *testing.T) {
	for _, variant := range []struct{ name, lib string }{
		{"standin", ""},
		{"arduino-mqtt", os.Getenv(ArduinoMQTTEnv)},
	} {
		t.Run(variant.name, func(t *testing.T) {
			if variant.name != "standin" && variant.lib == "" {
				t.Skipf("the arduino-mqtt library's source is not here (set %s to a checkout of 256dpi/arduino-mqtt to build with it)", ArduinoMQTTEnv)
			}
			d := arinatest.Start(t, withCounts)
			host, port, _ := strings.Cut(d.MQTTAddr, ":")
			bin := buildSketch(t, variant.lib, `ARINA_HOST="`+host+`"`, "ARINA_PORT="+port,
				`CONTENT="Stew"`, `REACTION="fire"`, `BADGE="sam"`)
			members := func(want ...string) {
				t.Helper()
				arinatest.WaitFor(t, 10*time.Second, func() error {
					if got := arinatest.Members(t, d.HTTPURL, "Stew", "fire"); !slices.Equal(got, want) {
						return fmt.Errorf("members of Stew/fire %q, want %q", got, want)
					}
					return nil
				})
			}

			mosquittoPub(t, d.MQTTAddr, "kitchen/Stew/fire", "add ann")
			badge := start(t, "", nil, bin)
			badge.expect(t, 30*time.Second, regexp.MustCompile(`^added sam to Stew/fire$`))
			// The PUBACK came: the event is applied already.
			if got := arinatest.Members(t, d.HTTPURL, "Stew", "fire"); !slices.Equal(got, []string{"ann", "sam"}) {
				t.Fatalf("members of Stew/fire right after the sketch's PUBACK: %q, want [ann sam]", got)
			}
			badge.expect(t, 10*time.Second, regexp.MustCompile(`^count 2$`))
			mosquittoPub(t, d.MQTTAddr, "kitchen/Stew/fire", "remove ann")
			badge.expect(t, 10*time.Second, regexp.MustCompile(`^count 1$`))

			// Power lost: the connection drops without a DISCONNECT; the will removes sam.
			badge.stop(t, syscall.SIGKILL)
			members()
		})
	}
}
