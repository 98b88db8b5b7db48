package devserver

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// serverLogger adapts slog to the Temporal server's logger so the embedded
// server logs one line per event like the rest of the service.
type serverLogger struct{ l *slog.Logger }

func newServerLogger(l *slog.Logger) log.Logger {
	return serverLogger{l: l.With("component", "temporal")}
}

func (s serverLogger) log(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, len(tags))
	for _, t := range tags {
		attrs = append(attrs, slog.Any(t.Key(), tagValue(t.Value())))
	}
	s.l.LogAttrs(ctx, level, msg, attrs...)
}

func tagValue(v any) any {
	switch x := v.(type) {
	case error:
		return x.Error()
	case fmt.Stringer:
		return x.String()
	default:
		return v
	}
}

func (s serverLogger) Debug(msg string, tags ...tag.Tag)  { s.log(slog.LevelDebug, msg, tags) }
func (s serverLogger) Info(msg string, tags ...tag.Tag)   { s.log(slog.LevelInfo, msg, tags) }
func (s serverLogger) Warn(msg string, tags ...tag.Tag)   { s.log(slog.LevelWarn, msg, tags) }
func (s serverLogger) Error(msg string, tags ...tag.Tag)  { s.log(slog.LevelError, msg, tags) }
func (s serverLogger) DPanic(msg string, tags ...tag.Tag) { s.log(slog.LevelError, msg, tags) }
func (s serverLogger) Panic(msg string, tags ...tag.Tag) {
	s.log(slog.LevelError, msg, tags)
	panic(msg)
}

// Fatal ends the process as the server expects, with its one log line
// (e.g. "Failed to start gRPC listener" and the address) and no goroutine
// dump. StartTemporal checks the frontend port first, so this is a port
// taken in the moment between.
func (s serverLogger) Fatal(msg string, tags ...tag.Tag) {
	s.log(slog.LevelError, msg, tags)
	os.Exit(1)
}

// With keeps tags attached to derived loggers.
func (s serverLogger) With(tags ...tag.Tag) log.Logger {
	args := make([]any, 0, 2*len(tags))
	for _, t := range tags {
		args = append(args, t.Key(), tagValue(t.Value()))
	}
	return serverLogger{l: s.l.With(args...)}
}

// muteHandler passes records on until muted. The embedded server is muted
// once it is asked to stop: its services then fail to reach each other on
// the way down and log dozens of warnings and errors that say nothing
// about the stack.
type muteHandler struct {
	h     slog.Handler
	muted *atomic.Bool
}

func newMuteHandler(h slog.Handler) muteHandler {
	return muteHandler{h: h, muted: new(atomic.Bool)}
}

func (m muteHandler) mute() { m.muted.Store(true) }

func (m muteHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !m.muted.Load() && m.h.Enabled(ctx, l)
}

func (m muteHandler) Handle(ctx context.Context, r slog.Record) error {
	if m.muted.Load() || ignored[r.Message] {
		return nil
	}
	return m.h.Handle(ctx, r)
}

func (m muteHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return muteHandler{h: m.h.WithAttrs(as), muted: m.muted}
}

func (m muteHandler) WithGroup(name string) slog.Handler {
	return muteHandler{h: m.h.WithGroup(name), muted: m.muted}
}

// ignored are warnings the embedded server logs on every start that call
// for no action in development.
var ignored = map[string]bool{
	"HTTP API port has not been set. Nexus HTTP endpoints will not be available. To enable Nexus, follow these instructions: https://github.com/temporalio/temporal/blob/main/docs/architecture/nexus.md#enabling-nexus.": true,
}
