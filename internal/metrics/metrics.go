// Package metrics is the service's Prometheus registry: process and Go
// runtime metrics, the Temporal SDK's client and worker metrics, and the
// service's own.
//
// The service's own metrics carry only labels from small fixed sets (import
// and export types, formats, outcomes, reject codes, payment statuses and
// sources, configured gateway names), never an id, an email, an amount or
// anything else a customer or a caller chose. Every method of *Metrics
// does nothing on a nil receiver, so packages run without metrics (tests,
// tools) need no checks.
package metrics

import (
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Label values of the service's own metrics.
const (
	// Import row outcomes (payments_import_rows_total's outcome).
	OutcomeWritten   = "written"
	OutcomeUnchanged = "unchanged"
	OutcomeRejected  = "rejected"

	// Gateway callback outcomes (payments_gateway_callbacks_total's
	// outcome).
	//
	// CallbackAccepted: the result settled its payment.
	CallbackAccepted = "accepted"
	// CallbackDuplicate: a repeat of what is stored; nothing changed.
	CallbackDuplicate = "duplicate"
	// CallbackConflict: it contradicts what is stored (kept as an audit
	// event, nothing changed).
	CallbackConflict = "conflict"
	// CallbackQueued: its payment is not recorded yet; it waits for it.
	CallbackQueued = "queued"
	// CallbackRejected: a signed result the ledger refuses (a bad amount
	// or status).
	CallbackRejected = "rejected"
	// CallbackInvalid: a signed body that is not a gateway result.
	CallbackInvalid = "invalid"
	// CallbackBadSignature: a malformed or wrong signature.
	CallbackBadSignature = "bad_signature"
	// CallbackMissingSignature: no signature header.
	CallbackMissingSignature = "missing_signature"
	// CallbackStaleSignature: a correct signature with a timestamp outside
	// the tolerance (a replay or a skewed clock).
	CallbackStaleSignature = "stale_signature"
	// CallbackUnknownGateway: no secret is configured for the gateway.
	CallbackUnknownGateway = "unknown_gateway"
	// CallbackTooLarge: the body is over the limit.
	CallbackTooLarge = "too_large"
	// CallbackError: the service failed to apply it (the gateway retries).
	CallbackError = "error"

	// UnknownGateway is the gateway label of callbacks for a gateway with
	// no configured secret: the path segment is the caller's choice and is
	// never a label value.
	UnknownGateway = "unknown"
	// OtherReason replaces a reject code that is not a plain upper-case
	// code, so a label can never carry free text.
	OtherReason = "OTHER"
)

// Fixed label sets whose series are created at zero, so rates start from
// the first scrape.
var (
	importTypes     = []string{"orders", "payments"}
	importOutcomes  = []string{OutcomeWritten, OutcomeUnchanged, OutcomeRejected}
	paymentSources  = []string{"import", "api", "gateway"}
	paymentStatuses = []string{"PENDING", "SUCCESS", "FAILED"}
)

// Metrics owns a registry and the SDK metrics handler that reports into it.
type Metrics struct {
	Registry *prometheus.Registry
	// Temporal is given to every Temporal client of the process.
	Temporal client.MetricsHandler
	// LedgerRetries counts ledger and import chunk transactions retried
	// after a deadlock, lock wait timeout or duplicate key
	// (ledger.Ledger.OnRetry, importer.Importer.OnRetry).
	LedgerRetries prometheus.Counter

	importRows       *prometheus.CounterVec
	importRejects    *prometheus.CounterVec
	chunkDuration    *prometheus.HistogramVec
	paymentsRecorded *prometheus.CounterVec
	callbacks        *prometheus.CounterVec
	exportRows       *prometheus.CounterVec
	downloadRows     *prometheus.CounterVec
	scope            io.Closer
}

// New creates a registry with runtime collectors, the service's metrics and
// an SDK handler whose metrics are flushed into it every second.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		LedgerRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "payments_ledger_retries_total",
			Help: "Ledger transactions retried after a deadlock, lock wait timeout or duplicate key.",
		}),
		importRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_import_rows_total",
			Help: "Rows of committed import chunks by import type and outcome (written, unchanged, rejected).",
		}, []string{"type", "outcome"}),
		importRejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_import_rejects_total",
			Help: "Rejected rows of committed import chunks by import type and reject code.",
		}, []string{"type", "reason"}),
		chunkDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "payments_import_chunk_duration_seconds",
			Help: "Time an import chunk activity took to read, validate and commit its chunk, by import type.",
			// From a few rows to the default 25000-row chunk on a busy
			// database.
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"type"}),
		paymentsRecorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_payments_recorded_total",
			Help: "Payment changes committed by the ledger (new payments and settlements) by the status they left the payment in and their source (import, api, gateway).",
		}, []string{"status", "source"}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_gateway_callbacks_total",
			Help: "Gateway callbacks (POST /webhooks/{gateway}) by configured gateway and outcome.",
		}, []string{"gateway", "outcome"}),
		exportRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_export_rows_total",
			Help: "Rows written into committed parts of export jobs, by type and format.",
		}, []string{"type", "format"}),
		downloadRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_download_rows_total",
			Help: "Rows streamed by completed GET /download responses, by type and format.",
		}, []string{"type", "format"}),
	}
	for _, typ := range importTypes {
		for _, o := range importOutcomes {
			m.importRows.WithLabelValues(typ, o)
		}
		m.chunkDuration.WithLabelValues(typ)
	}
	for _, src := range paymentSources {
		for _, st := range paymentStatuses {
			m.paymentsRecorded.WithLabelValues(st, src)
		}
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.LedgerRetries, m.importRows, m.importRejects, m.chunkDuration, m.paymentsRecorded, m.callbacks,
		m.exportRows, m.downloadRows)
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:       reg,
		Gatherer:         reg,
		DefaultTimerType: tallyprom.HistogramTimerType,
		// A metric whose label set changes must not take the process down.
		OnRegisterError: func(error) {},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	m.Temporal = sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope))
	m.scope = closer
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Close flushes and stops the SDK metrics reporting.
func (m *Metrics) Close() error {
	if m == nil || m.scope == nil {
		return nil
	}
	return m.scope.Close()
}

// ImportChunk is what one committed import chunk did.
type ImportChunk struct {
	// Type is the import type: orders or payments.
	Type                         string
	Written, Unchanged, Rejected int64
	// Rejects counts the rejected rows by reject code (SPEC section 5).
	Rejects map[string]int64
	// Duration is how long the chunk took.
	Duration time.Duration
}

// ObserveImportChunk counts a committed chunk's rows and observes its
// duration. Call it once per chunk committed, not for a replayed one.
func (m *Metrics) ObserveImportChunk(c ImportChunk) {
	if m == nil {
		return
	}
	typ := label(c.Type)
	m.importRows.WithLabelValues(typ, OutcomeWritten).Add(float64(c.Written))
	m.importRows.WithLabelValues(typ, OutcomeUnchanged).Add(float64(c.Unchanged))
	m.importRows.WithLabelValues(typ, OutcomeRejected).Add(float64(c.Rejected))
	for code, n := range c.Rejects {
		if n > 0 {
			m.importRejects.WithLabelValues(typ, reason(code)).Add(float64(n))
		}
	}
	m.chunkDuration.WithLabelValues(typ).Observe(c.Duration.Seconds())
}

// PaymentsRecorded counts n payment changes of one source (import, api,
// gateway) that left their payments in status; it fits
// ledger.Ledger.OnRecorded.
func (m *Metrics) PaymentsRecorded(source, status string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.paymentsRecorded.WithLabelValues(label(status), label(source)).Add(float64(n))
}

// LedgerRetry counts one retried ledger transaction; it fits
// ledger.Ledger.OnRetry.
func (m *Metrics) LedgerRetry(int, error) {
	if m == nil {
		return
	}
	m.LedgerRetries.Inc()
}

// GatewayCallback counts one gateway callback. gateway must be a configured
// gateway's name (UnknownGateway otherwise) and outcome one of the
// Callback… constants.
func (m *Metrics) GatewayCallback(gateway, outcome string) {
	if m == nil {
		return
	}
	m.callbacks.WithLabelValues(label(gateway), label(outcome)).Inc()
}

// ExportRows counts the rows of a committed export part.
func (m *Metrics) ExportRows(typ, format string, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.exportRows.WithLabelValues(label(typ), label(format)).Add(float64(n))
}

// DownloadRows counts the rows of a completed download.
func (m *Metrics) DownloadRows(typ, format string, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.downloadRows.WithLabelValues(label(typ), label(format)).Add(float64(n))
}

// label bounds a label value the service chose (types, formats, statuses,
// outcomes, configured gateway names): a programming error must not create
// a huge value.
func label(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// reason returns a reject code as a label value: codes are upper-case
// words joined by underscores; anything else becomes OtherReason.
func reason(code string) string {
	if code == "" || len(code) > 40 {
		return OtherReason
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; (c < 'A' || c > 'Z') && c != '_' && (c < '0' || c > '9') {
			return OtherReason
		}
	}
	return code
}
