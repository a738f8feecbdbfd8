package server

import (
	"io"
	"log/slog"
	"regexp"
	"time"

	"github.com/labstack/echo/v4"
)

// Log keys. A request is logged with its method, route template, status
// and duration only: never a remote address, a token, a key, a body, or an
// id from the path (the route is the template, so there is no per-stream
// access trail).
const (
	logKeyMethod   = "method"
	logKeyRoute    = "route"
	logKeyStatus   = "status"
	logKeyDuration = "duration_ms"
	logKeyError    = "error"
	logKeyGen      = "kek_generation"
	logKeyCount    = "count"
)

const (
	levelInfo  = slog.LevelInfo
	levelWarn  = slog.LevelWarn
	levelError = slog.LevelError
)

// NewLogger returns the relay's logger: JSON lines with times in UTC.
func NewLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
				a.Value = slog.TimeValue(a.Value.Time().UTC())
			}
			return a
		},
	}))
}

// idPattern matches the printed form of every syncproto id and hash;
// addrPattern IPv4 and bracketed IPv6 addresses (a database address in a
// store error, say). Both are cut from errors before they are logged.
var (
	idPattern   = regexp.MustCompile(`\b[a-z]_[a-z2-7]{26,52}\b`)
	addrPattern = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b|\[[0-9a-fA-F:.%]+\](:\d+)?`)
)

// redact removes ids and addresses from an error message.
func redact(s string) string {
	s = idPattern.ReplaceAllString(s, "<id>")
	return addrPattern.ReplaceAllString(s, "<addr>")
}

func errAttr(err error) slog.Attr { return slog.String(logKeyError, redact(err.Error())) }

func routeAttr(c echo.Context) slog.Attr { return slog.String(logKeyRoute, routeOf(c)) }

// routeOf returns the route template that matched, e.g.
// /v1/t/:tenant/streams/:stream/batches.
func routeOf(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return "unmatched"
}

// observe logs and counts every request once its answer is written.
func (r *Relay) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		d := time.Since(start)
		route, method, status := routeOf(c), c.Request().Method, c.Response().Status
		r.metrics.request(route, method, status, d)
		r.log.LogAttrs(c.Request().Context(), levelInfo, "request",
			slog.String(logKeyMethod, method),
			slog.String(logKeyRoute, route),
			slog.Int(logKeyStatus, status),
			slog.Float64(logKeyDuration, float64(d.Microseconds())/1000),
		)
		return nil
	}
}
