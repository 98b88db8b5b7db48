package api

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/codec"
	"github.com/acme/payments/internal/export"
)

// Route is one entry of the API's route table: every route the server
// answers is declared here once, with the query parameters it accepts, so
// the mux, the query check and the OpenAPI test all read the same list.
type Route struct {
	Method string
	// Path is a ServeMux pattern path, the same as the OpenAPI path.
	Path string
	// Scope is the token scope the route needs; "" needs no token.
	Scope auth.Scope
	// Query are the query parameters the route accepts; any other is 400.
	Query []string
	// Idempotent routes honour an Idempotency-Key header.
	Idempotent bool
	handler    http.Handler
}

// pageParams are the query parameters of every list.
var pageParams = []string{"limit", "cursor"}

// Routes is the API's route table.
func (s *Server) Routes() []Route {
	// The codec admits pii tokens and the codec-only credential a UI
	// proxy holds (auth.Codec); every other route refuses the latter.
	codecHandler := s.cors(s.require(bufferBody(maxCodecBody, codec.Handler(s.Keys)), auth.PII, auth.Codec))
	importOpts := []string{"type", "max_rejects"}
	routes := []Route{
		{Method: "GET", Path: "/healthz", handler: http.HandlerFunc(s.healthz)},
		{Method: "GET", Path: "/readyz", handler: http.HandlerFunc(s.readyz)},
		{Method: "GET", Path: "/metrics", handler: http.HandlerFunc(s.metrics)},
		{Method: "GET", Path: "/version", handler: http.HandlerFunc(s.version)},
		{Method: "GET", Path: "/openapi.json", handler: http.HandlerFunc(s.openAPI)},
		{Method: "POST", Path: "/codec/encode", handler: codecHandler},
		{Method: "POST", Path: "/codec/decode", handler: codecHandler},
		{Method: "OPTIONS", Path: "/codec/encode", handler: codecHandler},
		{Method: "OPTIONS", Path: "/codec/decode", handler: codecHandler},
		{Method: "POST", Path: "/upload", Scope: auth.Write, Query: importOpts, handler: http.HandlerFunc(s.upload)},
		{Method: "GET", Path: "/imports", Scope: auth.Read, Query: append([]string{"state"}, pageParams...), handler: http.HandlerFunc(s.listImports)},
		{Method: "GET", Path: "/imports/{id}", Scope: auth.Read, handler: http.HandlerFunc(s.getImport)},
		{Method: "GET", Path: "/imports/{id}/rejects", Scope: auth.Read, handler: http.HandlerFunc(s.importRejects)},
		{Method: "POST", Path: "/imports/{id}/cancel", Scope: auth.Write, handler: http.HandlerFunc(s.cancelImport)},
		{Method: "GET", Path: "/download", Scope: auth.Read, Query: export.ParamNames, handler: http.HandlerFunc(s.download)},
		{Method: "POST", Path: "/exports", Scope: auth.Write, Query: export.ParamNames, handler: http.HandlerFunc(s.createExport)},
		{Method: "GET", Path: "/exports", Scope: auth.Read, Query: pageParams, handler: http.HandlerFunc(s.listExports)},
		{Method: "GET", Path: "/exports/{id}", Scope: auth.Read, handler: http.HandlerFunc(s.getExport)},
		{Method: "GET", Path: "/exports/{id}/file", Scope: auth.Read, handler: http.HandlerFunc(s.exportFile)},
		{Method: "POST", Path: "/exports/{id}/cancel", Scope: auth.Write, handler: http.HandlerFunc(s.cancelExport)},
		{Method: "POST", Path: "/orders", Scope: auth.Write, Idempotent: true, handler: http.HandlerFunc(s.createOrder)},
		{Method: "GET", Path: "/orders", Scope: auth.Read, Query: append([]string{"customer_email"}, pageParams...), handler: http.HandlerFunc(s.findOrders)},
		{Method: "GET", Path: "/orders/{id}", Scope: auth.Read, handler: http.HandlerFunc(s.getOrder)},
		{Method: "POST", Path: "/orders/{id}/payments", Scope: auth.Write, Idempotent: true, handler: http.HandlerFunc(s.createPayment)},
		{Method: "POST", Path: "/webhooks/{gateway}", handler: http.HandlerFunc(s.gatewayCallback)},
	}
	return routes
}

// Handler returns the API's routes wrapped in logging and panic recovery.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.Routes() {
		h := rt.handler
		if rt.Idempotent {
			h = s.idempotent(rt, h)
		}
		if !strings.HasPrefix(rt.Path, "/codec/") {
			// The codec's own handler reads no query; its preflight
			// must not be refused for one either.
			h = checkQuery(rt.Query, h)
		}
		if rt.Scope != "" {
			h = s.require(h, rt.Scope)
		}
		// Outermost, so a request refused before its body is read
		// (401) cannot trickle one in either.
		timeout := s.bodyReadTimeout()
		if rt.Path == "/upload" {
			timeout = s.uploadReadTimeout()
		}
		h = readDeadline(timeout, h)
		mux.Handle(rt.Method+" "+rt.Path, h)
	}
	return s.recoverer(s.logRequests(jsonMuxErrors(mux)))
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.Metrics == nil {
		WriteError(w, http.StatusNotFound, "not_found", "metrics are not configured")
		return
	}
	s.Metrics.Handler().ServeHTTP(w, r)
}

// checkQuery refuses a query parameter the route does not declare, and
// one given more than once, with a 400 that names it.
func checkQuery(allowed []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for name, vals := range r.URL.Query() {
			if !slices.Contains(allowed, name) {
				msg := "unknown query parameter " + strconv.Quote(name)
				if len(allowed) == 0 {
					msg += " (this endpoint takes none)"
				} else {
					msg += " (allowed: " + strings.Join(allowed, ", ") + ")"
				}
				WriteError(w, http.StatusBadRequest, "bad_request", msg)
				return
			}
			if len(vals) > 1 {
				WriteError(w, http.StatusBadRequest, "bad_request", "query parameter "+strconv.Quote(name)+" given "+strconv.Itoa(len(vals))+" times")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// jsonMuxErrors answers the mux's own 404 and 405 in the JSON error format,
// keeping the 405's Allow header. Matched routes run untouched.
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &muxError{header: http.Header{}}
		h.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			WriteError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+rec.header.Get("Allow")+")")
		case http.StatusNotFound:
			WriteError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
		default:
			// A redirect (cleaned path) or anything else the mux says.
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body.Bytes())
		}
	})
}

// muxError records what the mux's fallback handler answers.
type muxError struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (m *muxError) Header() http.Header { return m.header }
func (m *muxError) WriteHeader(code int) {
	if m.status == 0 {
		m.status = code
	}
}

func (m *muxError) Write(b []byte) (int, error) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	return m.body.Write(b)
}
