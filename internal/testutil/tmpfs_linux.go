package testutil

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// MustTmpfs mounts a tmpfs of the given size ("64m") on a new temporary directory, so
// that a test can fill a real disk, and unmounts it at cleanup. It skips the test when
// not root or when mounting is not allowed (CI runs as root and may mount).
func MustTmpfs(tb testing.TB, size string) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("mounting a tmpfs to fill a disk needs root")
	}
	dir := tb.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		tb.Skipf("cannot mount a tmpfs here: %v", err)
	}
	tb.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// FillDisk writes a ballast file into dir until less than leave bytes are free on its
// filesystem, and returns the file's path (remove it to free the space).
func FillDisk(tb testing.TB, dir string, leave uint64) string {
	tb.Helper()
	path := dir + "/ballast"
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			tb.Fatal(err)
		}
		if st.Bavail*uint64(st.Bsize) < leave {
			return path
		}
		if _, err := f.Write(chunk); err != nil {
			return path
		}
	}
}
