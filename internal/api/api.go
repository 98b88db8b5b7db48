// Package api is the service's HTTP API (SPEC section 6): JSON in and out,
// bearer tokens with scopes, and the operational endpoints.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"go.temporal.io/sdk/client"

	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/egress"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/export"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/lifecycle"
	"github.com/acme/payments/internal/metrics"
	"github.com/acme/payments/internal/orders"
)

// Server holds the API's dependencies. Handler builds its routes.
type Server struct {
	DB       *sqlx.DB
	Temporal client.Client
	Tokens   *auth.Tokens
	Keys     *encryption.Keyring
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// Intake starts imports (POST /upload).
	Intake *ingest.Intake
	// Exporter streams downloads (GET /download); Exports runs export jobs.
	Exporter *export.Exporter
	Exports  *egress.Exports
	// Orders and Lifecycle serve orders, payments and callbacks.
	Orders    *orders.Store
	Lifecycle *lifecycle.Client
	// WebhookSecrets are the gateways' signing secrets by gateway name.
	WebhookSecrets map[string][]byte
	// CodecOrigins may call /codec from a browser (the Temporal UI): exact
	// origins, compared as strings; there is no wildcard.
	CodecOrigins []string
	// BodyReadTimeout is how long a request other than an upload may
	// take to send its body, UploadReadTimeout an upload's; zero means
	// DefaultBodyReadTimeout and DefaultUploadReadTimeout.
	BodyReadTimeout, UploadReadTimeout time.Duration
}

// maxCodecBody bounds a codec request; payloads are small JSON documents.
const maxCodecBody = 8 << 20

// NewHTTPServer wraps h in an http.Server with timeouts that bound slow
// clients. Its ReadTimeout is the short one of every request body;
// Handler lengthens it for uploads only, and lifts it once a body is read,
// so multi-gigabyte uploads and downloads still fit.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       DefaultBodyReadTimeout,
		WriteTimeout:      30 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// ErrorBody is the JSON error format of SPEC section 6.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// WriteError writes {"error":{"code":…,"message":…}} with status.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	var body ErrorBody
	body.Error.Code, body.Error.Message = code, message
	WriteJSON(w, status, body)
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only when both MySQL and Temporal answer, so a load
// balancer keeps traffic away from an instance that cannot do its work.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{"mysql": "ok", "temporal": "ok"}
	ready := true
	if s.DB == nil {
		checks["mysql"], ready = "not configured", false
	} else if err := s.DB.PingContext(ctx); err != nil {
		checks["mysql"], ready = "unreachable", false
		s.Logger.Warn("readiness: mysql", "error", err.Error())
	}
	if s.Temporal == nil {
		checks["temporal"], ready = "not configured", false
	} else if _, err := s.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		checks["temporal"], ready = "unreachable", false
		s.Logger.Warn("readiness: temporal", "error", err.Error())
	}
	if !ready {
		WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "checks": checks})
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}

// require admits requests whose bearer token has one of anyOf: 401
// without a known token, 403 without such a scope.
func (s *Server) require(next http.Handler, anyOf ...auth.Scope) http.Handler {
	names := make([]string, len(anyOf))
	for i, sc := range anyOf {
		names[i] = string(sc)
	}
	need := strings.Join(names, " or ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scopes, err := s.Tokens.FromRequest(r)
		switch {
		case errors.Is(err, auth.ErrNoToken):
			w.Header().Set("WWW-Authenticate", `Bearer realm="payments"`)
			WriteError(w, http.StatusUnauthorized, "unauthorized", "missing bearer token")
			return
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="payments", error="invalid_token"`)
			WriteError(w, http.StatusUnauthorized, "unauthorized", "unknown bearer token")
			return
		case !scopes.HasAny(anyOf...):
			WriteError(w, http.StatusForbidden, "forbidden", "token lacks the "+need+" scope")
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithScopes(r.Context(), scopes)))
	})
}

// cors admits browser calls from CodecOrigins only, each named exactly.
// Credentials are allowed so that a UI configured to include them is not
// refused by its browser; the API reads no cookie, so they open nothing.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowed := origin != "" && origin != "null" && origin != "*" && slices.Contains(s.CodecOrigins, origin)
		// The answer depends on Origin whether or not it is allowed.
		w.Header().Add("Vary", "Origin")
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
			h.Set("Access-Control-Max-Age", "600")
		}
		if r.Method == http.MethodOptions {
			if !allowed {
				WriteError(w, http.StatusForbidden, "forbidden", "origin not allowed")
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer (flushes,
// deadlines) for streaming endpoints.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs one line per request. It logs the path only: query
// strings can carry customer data (?customer_email=).
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
			return
		}
		s.Logger.Info("http request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds())
	})
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Logger.Error("http handler panic", "method", r.Method, "path", r.URL.Path)
				WriteError(w, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
