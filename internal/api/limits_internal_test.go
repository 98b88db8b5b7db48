package api

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A short read deadline bounds the body only: a handler that runs longer
// than it after reading its body, or one with no body at all (a long
// download), keeps its context. A deadline set on a request without a
// body times out net/http's background read, which cancels the request.
func TestReadDeadlineIsLiftedAfterTheBody(t *testing.T) {
	const deadline = 150 * time.Millisecond
	h := readDeadline(deadline, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		// Well past the deadline, as a download or a workflow update is.
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusInternalServerError)
			return
		case <-time.After(4 * deadline):
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv := NewHTTPServer("127.0.0.1:0", h)
	srv.ReadTimeout = deadline // the server's own deadline, as short
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	base := "http://" + ln.Addr().String()
	for _, c := range []struct {
		method, body string
	}{{"POST", `{"small":"body"}`}, {"GET", ""}} {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req, _ := http.NewRequest(c.method, base+"/", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.method, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Errorf("%s: %d %s", c.method, resp.StatusCode, b)
		}
	}
}

// The server bounds headers, bodies and idle connections; its read
// timeout is the short body one (uploads lengthen theirs per route).
func TestNewHTTPServerTimeouts(t *testing.T) {
	srv := NewHTTPServer(":0", http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadHeaderTimeout > 30*time.Second || srv.IdleTimeout <= 0 ||
		srv.ReadTimeout != DefaultBodyReadTimeout || DefaultBodyReadTimeout > 30*time.Second || srv.MaxHeaderBytes <= 0 {
		t.Fatalf("timeouts: header %v read %v idle %v, max header bytes %d",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}
