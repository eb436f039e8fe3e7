//go:build unix

package durable

import "golang.org/x/sys/unix"

var (
	syscallEAGAIN      = unix.EAGAIN
	syscallEWOULDBLOCK = unix.EWOULDBLOCK
)

// freeBytes returns the space available to unprivileged users on dir's filesystem.
func freeBytes(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
