package redis

import (
	"context"
	"fmt"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"
)

// SetLibraryLogger sends go-redis's own log lines (it logs every failed dial, for
// example) to l at debug level instead of the standard library's log package; the
// store logs what matters once (Redis unreachable, reachable again). go-redis has a
// single, process-wide logger: only main (or a test's TestMain) should call this.
func SetLibraryLogger(l *slog.Logger) {
	goredis.SetLogger(libraryLogger{l})
}

type libraryLogger struct{ l *slog.Logger }

func (g libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	if g.l.Enabled(ctx, slog.LevelDebug) {
		g.l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
	}
}
