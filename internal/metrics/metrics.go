// Package metrics is the service's Prometheus registry: process and Go
// runtime metrics, the Temporal SDK's client and worker metrics, and the
// service's own.
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

// Metrics owns a registry and the SDK metrics handler that reports into it.
type Metrics struct {
	Registry *prometheus.Registry
	// Temporal is given to every Temporal client of the process.
	Temporal client.MetricsHandler
	// LedgerRetries counts ledger transactions retried after a deadlock,
	// lock wait timeout or duplicate key (ledger.Ledger.OnRetry).
	LedgerRetries prometheus.Counter
	scope         io.Closer
}

// New creates a registry with runtime collectors and an SDK handler whose
// metrics are flushed into it every second.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	retries := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "payments_ledger_retries_total",
		Help: "Ledger transactions retried after a deadlock, lock wait timeout or duplicate key.",
	})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), retries)
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
	return &Metrics{
		Registry:      reg,
		Temporal:      sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)),
		LedgerRetries: retries,
		scope:         closer,
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Close flushes and stops the SDK metrics reporting.
func (m *Metrics) Close() error { return m.scope.Close() }
