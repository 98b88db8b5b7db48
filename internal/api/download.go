package api

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/export"
)

// download streams GET /download: the whole result of its parameters,
// straight from MySQL. Bad parameters are a 400 before any byte; an error
// before the first rows is a 500; one after them aborts the response, so
// the client sees a broken transfer, never a short file that looks
// complete. A client that goes away cancels the query.
func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	p, err := export.ParseParams(r.URL.Query(), auth.ScopesFrom(r.Context()).Has(auth.PII))
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	enc, err := export.NewEncoding(p)
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	body := &streamBody{w: w, header: enc.AppendHeader(nil), skip: enc.SkipFirst(),
		start: func() io.Writer { return startDownload(w, r, p, time.Now()) }}
	written, err := s.Exporter.WriteRecords(r.Context(), body, p, export.Range{})
	if err == nil {
		err = body.finish(enc.AppendFooter(nil))
	}
	if err == nil {
		s.Metrics.DownloadRows(string(p.Kind), string(p.Format), written.Rows)
		return
	}
	if !body.started && r.Context().Err() == nil {
		s.internalError(w, "download", err)
		return
	}
	if r.Context().Err() == nil {
		s.Logger.Error("download aborted", "type", string(p.Kind), "format", string(p.Format), "rows", written.Rows, "error", err.Error())
	}
	panic(http.ErrAbortHandler)
}

// startDownload sends the headers of a download and returns where its
// bytes go: gzipped when the client asks for it.
func startDownload(w http.ResponseWriter, r *http.Request, p export.Params, now time.Time) io.Writer {
	setFileHeaders(w, p, p.Filename(now))
	h := w.Header()
	h.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r) {
		w.WriteHeader(http.StatusOK)
		return w
	}
	h.Set("Content-Encoding", "gzip")
	w.WriteHeader(http.StatusOK)
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
	return gz
}

// setFileHeaders sets the headers of a download of an export of p.
func setFileHeaders(w http.ResponseWriter, p export.Params, filename string) {
	h := w.Header()
	h.Set("Content-Type", p.ContentType())
	h.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if masked := p.MaskedFields(); masked != "" {
		// Masked values are not the stored ones: such a file is not a
		// faithful import file.
		h.Set("X-Payments-Masked", masked)
	}
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// streamBody sends a file as its records come: nothing (not even the
// headers) before the first records, so an early error can still be a
// JSON error; then the file's header, then records with the first one's
// leading separator dropped.
type streamBody struct {
	w       http.ResponseWriter
	start   func() io.Writer
	out     io.Writer
	header  []byte
	skip    int
	started bool
}

func (b *streamBody) Write(p []byte) (int, error) {
	if !b.started {
		b.started = true
		b.out = b.start()
		if _, err := b.out.Write(b.header); err != nil {
			return 0, err
		}
		if len(p) < b.skip {
			return 0, errors.New("download: first record shorter than its separator")
		}
		n, err := b.out.Write(p[b.skip:])
		return n + b.skip, err
	}
	return b.out.Write(p)
}

// finish writes what a file of no records still has (its header), the
// footer, and the end of a gzip stream.
func (b *streamBody) finish(footer []byte) error {
	if !b.started {
		b.skip = 0
		if _, err := b.Write(nil); err != nil {
			return err
		}
	}
	if _, err := b.out.Write(footer); err != nil {
		return err
	}
	if gz, ok := b.out.(*gzip.Writer); ok {
		return gz.Close()
	}
	return nil
}
