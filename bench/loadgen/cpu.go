package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times: USER_HZ, 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// processCPU returns the user plus system CPU time of process pid (all its threads)
// from /proc/<pid>/stat; pid 0 is this process.
func processCPU(pid int) (time.Duration, error) {
	name := "/proc/self/stat"
	if pid > 0 {
		name = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces: count the
	// fields after its closing one. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command name", name)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: %d fields after the command name, want at least 13", name, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// readCPU reads the broker's and the generator's CPU times into b and g, with
// Options.BrokerPID; a failure is kept in cpuErr and leaves the CPU figures out of
// the report.
func (r *runner) readCPU(b, g *time.Duration) {
	if r.o.BrokerPID == 0 || r.cpuErr != nil {
		return
	}
	if *b, r.cpuErr = processCPU(r.o.BrokerPID); r.cpuErr != nil {
		return
	}
	*g, r.cpuErr = processCPU(0)
}
