package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/metrics/metricstest"
	"github.com/acme/payments/internal/webhook"
)

// Callbacks refused before they reach the ledger are counted by why, under
// the configured gateway's name or "unknown", never the path's.
func TestRefusedCallbacksAreCounted(t *testing.T) {
	s := newServer(t)
	secret := []byte("0123456789abcdef0123")
	s.WebhookSecrets = map[string][]byte{"acme": secret}
	h := s.Handler()
	now := time.Now()
	good := []byte(`{"payment_id":"P-1","status":"SUCCESS","amount":"1.00"}`)
	badAmount := []byte(`{"payment_id":"P-1","status":"SUCCESS","amount":"1.00000000000000000000000000000000000000000"}`)
	notResult := []byte(`{"payment_id":"P-1","status":"MAYBE"}`)
	huge := []byte(`{"payment_id":"` + strings.Repeat("x", webhook.MaxBodyBytes) + `"}`)
	for _, c := range []struct {
		gw, sig string
		body    []byte
		status  int
	}{
		{"acme", "", good, http.StatusUnauthorized},
		{"acme", webhook.Sign([]byte("another-secret-012345"), now, good), good, http.StatusUnauthorized},
		{"acme", "t=1,v1=zz", good, http.StatusUnauthorized},
		{"acme", webhook.Sign(secret, now.Add(-time.Hour), good), good, http.StatusUnauthorized},
		{"acme", webhook.Sign(secret, now, notResult), notResult, http.StatusBadRequest},
		{"acme", webhook.Sign(secret, now, badAmount), badAmount, http.StatusBadRequest},
		{"acme", webhook.Sign(secret, now, huge), huge, http.StatusRequestEntityTooLarge},
		{"customer-42@example.com", webhook.Sign(secret, now, good), good, http.StatusUnauthorized},
	} {
		req := httptest.NewRequest("POST", "/webhooks/"+c.gw, strings.NewReader(string(c.body)))
		if c.sig != "" {
			req.Header.Set(webhook.Header, c.sig)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("callback %s %q: %d %s, want %d", c.gw, c.sig, rec.Code, rec.Body, c.status)
		}
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ss, err := metricstest.Scrape(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for outcome, want := range map[string]float64{
		"missing_signature": 1, "bad_signature": 2, "stale_signature": 1, "invalid": 1, "rejected": 1, "too_large": 1,
	} {
		if v, ok := ss.Get("payments_gateway_callbacks_total", "gateway", "acme", "outcome", outcome); !ok || v != want {
			t.Errorf("acme %s: %v (present %v), want %v", outcome, v, ok, want)
		}
	}
	if v, ok := ss.Get("payments_gateway_callbacks_total", "gateway", "unknown", "outcome", "unknown_gateway"); !ok || v != 1 {
		t.Errorf("unknown gateway: %v %v, want 1", v, ok)
	}
	if v := ss.Sum("payments_gateway_callbacks_total"); v != 8 {
		t.Errorf("%v callbacks counted, want 8", v)
	}
}
