package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/payments/internal/api"
	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/metrics"
	"github.com/acme/payments/internal/stacktest"
)

const hardToken = "hardening-all-token-1"

// hardServer is an API server without a database: enough for what is
// refused before any store is used. It serves over a real listener.
func hardServer(t *testing.T, configure func(*api.Server)) string {
	t.Helper()
	tokens, err := auth.ParseTokens(hardToken + ":read+write+pii")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := encryption.ParseKeys(stacktest.TestKeys)
	if err != nil {
		t.Fatal(err)
	}
	s := &api.Server{Tokens: tokens, Keys: keys, Metrics: metrics.New(), Logger: stacktest.Logger(t, 0),
		WebhookSecrets: map[string][]byte{"acme": []byte("hardening-webhook-secret")}}
	if configure != nil {
		configure(s)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// unsized hides a reader's length, so the client sends it chunked and the
// server learns its size only by reading.
type unsized struct{ io.Reader }

func post(t *testing.T, url, contentType string, header map[string]string, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, body)
	req.Header.Set("Authorization", "Bearer "+hardToken)
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// jsonError decodes the API's error shape, failing on anything else.
func jsonError(t *testing.T, what string, h http.Header, body []byte) api.ErrorBody {
	t.Helper()
	var e api.ErrorBody
	if !strings.HasPrefix(h.Get("Content-Type"), "application/json") || json.Unmarshal(body, &e) != nil ||
		e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("%s: not the JSON error shape: %s %q", what, h.Get("Content-Type"), body)
	}
	return e
}

// A body over its route's limit is 413 in the JSON error shape on every
// route that takes one, sized or chunked; /codec too, whose own handler
// answers in plain text.
func TestBodyOverLimitIs413(t *testing.T) {
	base := hardServer(t, nil)
	big := func(n int) []byte {
		return append(append([]byte(`{"order_id":"`), bytes.Repeat([]byte("x"), n)...), `"}`...)
	}
	for _, c := range []struct {
		name, path, contentType string
		header                  map[string]string
		body                    func() io.Reader
	}{
		{"50 MB order", "/orders", "application/json", nil, func() io.Reader { return bytes.NewReader(big(50 << 20)) }},
		{"chunked order", "/orders", "application/json", nil, func() io.Reader { return unsized{bytes.NewReader(big(1 << 20))} }},
		{"order with an idempotency key", "/orders", "application/json", map[string]string{"Idempotency-Key": "k-1"},
			func() io.Reader { return unsized{bytes.NewReader(big(1 << 20))} }},
		{"payment", "/orders/X-1/payments", "application/json", nil, func() io.Reader { return bytes.NewReader(big(1 << 20)) }},
		{"export as JSON", "/exports", "application/json", nil, func() io.Reader { return unsized{bytes.NewReader(big(1 << 20))} }},
		{"export as a form", "/exports", "application/x-www-form-urlencoded", nil,
			func() io.Reader {
				return unsized{strings.NewReader("type=orders&status=" + strings.Repeat("x", 1<<20))}
			}},
		{"gateway callback", "/webhooks/acme", "application/json", nil, func() io.Reader { return bytes.NewReader(big(1 << 20)) }},
		{"codec", "/codec/encode", "application/json", nil,
			func() io.Reader { return unsized{bytes.NewReader(big(9 << 20))} }},
		{"codec, sized", "/codec/decode", "application/json", nil, func() io.Reader { return bytes.NewReader(big(9 << 20)) }},
	} {
		code, h, body := post(t, base+c.path, c.contentType, c.header, c.body())
		e := jsonError(t, c.name, h, body)
		if code != http.StatusRequestEntityTooLarge || e.Error.Code != "too_large" {
			t.Errorf("%s: %d %s", c.name, code, body)
		}
	}
}

// Invalid UTF-8 in a JSON body is refused, not replaced by U+FFFD.
func TestInvalidUTF8InJSONIs400(t *testing.T) {
	base := hardServer(t, nil)
	for _, c := range []struct{ name, path, body string }{
		{"order", "/orders", `{"order_id":"U-1","order_amount":"1.00","customer_email":"j` + "\xff" + `e@example.com"}`},
		{"order id", "/orders", `{"order_id":"U-` + "\xc3\x28" + `","order_amount":"1.00"}`},
		{"payment", "/orders/U-1/payments", `{"payment_id":"P-1","payment_amount":"1.00","payment_method":"CARD","payment_details":"` + "\xed\xa0\x80" + `"}`},
		{"export", "/exports", `{"type":"orders","format":"csv","status":"` + "\xff" + `"}`},
	} {
		code, h, body := post(t, base+c.path, "application/json", nil, strings.NewReader(c.body))
		e := jsonError(t, c.name, h, body)
		if code != http.StatusBadRequest || !strings.Contains(e.Error.Message, "UTF-8") {
			t.Errorf("%s: %d %s", c.name, code, body)
		}
	}
}

// A body that trickles in is cut at the short read deadline, on the
// unauthenticated /webhooks/{gateway} and on a JSON route: a client that
// sends a byte every 200 ms of a 100-byte body sees its connection closed
// before it is done.
func TestTricklingBodyIsCut(t *testing.T) {
	base := hardServer(t, func(s *api.Server) { s.BodyReadTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(base, "http://")
	for _, path := range []string{"/webhooks/acme", "/orders", "/webhooks/no-such-gateway"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		const size = 100
		_, err = io.WriteString(conn, "POST "+path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+hardToken+
			"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
		if err != nil {
			t.Fatal(err)
		}
		answered := make(chan *http.Response, 1)
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			br := bufio.NewReader(conn)
			if resp, err := http.ReadResponse(br, nil); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				answered <- resp
			}
			_, _ = io.Copy(io.Discard, br) // until the server closes
		}()
		sent := 0
	trickle:
		for sent < size {
			select {
			case <-closed:
				break trickle
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{'x'}); err != nil {
				break
			}
			sent++
		}
		if sent == size {
			t.Errorf("%s: the whole trickled body was taken", path)
		}
		select {
		case resp := <-answered:
			if resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: answered %d", path, resp.StatusCode)
			}
		default:
		}
		conn.Close()
		<-closed
	}
}

// The OpenAPI document names 413 and 408 on every route that reads a
// body, as the server answers them.
func TestOpenAPINamesBodyLimits(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, rt := range (&api.Server{}).Routes() {
		if rt.Method != "POST" || strings.HasSuffix(rt.Path, "/cancel") {
			continue // cancels read no body
		}
		op := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		for _, code := range []string{"413", "408"} {
			if _, ok := op.Responses[code]; !ok {
				t.Errorf("%s %s: no %s documented", rt.Method, rt.Path, code)
			}
		}
	}
}
