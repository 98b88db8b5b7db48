package api

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/payments/internal/ident"
	"github.com/acme/payments/internal/mask"
)

// How long a client may take to send a request body, from the moment its
// handler starts. Uploads are files of gigabytes; everything else is a
// small JSON document, a form or nothing, and a body that trickles in
// (slowloris) must not hold a connection for long — above all on the
// unauthenticated /webhooks/{gateway}.
const (
	DefaultBodyReadTimeout   = 15 * time.Second
	DefaultUploadReadTimeout = 30 * time.Minute
)

// maxFormBody bounds a form body (POST /exports).
const maxFormBody = 64 << 10

// maxUploadOptionBytes bounds the value of an upload's option field.
const maxUploadOptionBytes = 64

func (s *Server) bodyReadTimeout() time.Duration {
	if s.BodyReadTimeout > 0 {
		return s.BodyReadTimeout
	}
	return DefaultBodyReadTimeout
}

func (s *Server) uploadReadTimeout() time.Duration {
	if s.UploadReadTimeout > 0 {
		return s.UploadReadTimeout
	}
	return DefaultUploadReadTimeout
}

// readDeadline gives the client d from now to send the request body.
// net/http lifts the deadline itself once the body has been read to its
// end (its background read, which notices a client that goes away, starts
// then), so a long response (a download, a workflow update) is not cut.
// A request without a body gets none: that background read has already
// started, and a deadline would time it out and cancel the request.
func readDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		next.ServeHTTP(w, r)
	})
}

// readBody reads a whole request body of at most limit bytes. It answers
// an oversized body 413, one not received within the read deadline 408,
// and another read failure 400, all in the JSON error format.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if r.ContentLength > limit {
		writeTooLarge(w, limit)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		writeBodyError(w, err, limit)
		return nil, false
	}
	return b, true
}

// writeBodyError answers a failure to read a request body.
func writeBodyError(w http.ResponseWriter, err error, limit int64) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeTooLarge(w, tooBig.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		WriteError(w, http.StatusRequestTimeout, "request_timeout", "the request body was not received in time")
	default:
		WriteError(w, http.StatusBadRequest, "bad_request", "reading the request body failed")
	}
}

func writeTooLarge(w http.ResponseWriter, limit int64) {
	WriteError(w, http.StatusRequestEntityTooLarge, "too_large", "request body is larger than "+byteSize(limit))
}

// byteSize is n bytes for a message: "64 KiB", "8 MiB" or "1000 bytes".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// bufferBody reads a body of at most limit bytes before next runs, so a
// handler that answers read errors in its own format (the codec's plain
// text) never sees one: an oversized body is the API's JSON 413.
func bufferBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		b, ok := readBody(w, r, limit)
		if !ok {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		next.ServeHTTP(w, r)
	})
}

// errPartAfterFile: an upload's multipart body goes on after its file.
var errPartAfterFile = errors.New("multipart body has a part after \"file\"; send type and max_rejects before it, and one file only")

// lastPart is an upload's file part, which must be the body's last part:
// at its end, another part is errPartAfterFile. The end is looked at
// once; later reads repeat what it found.
type lastPart struct {
	part *multipart.Part
	mr   *multipart.Reader
	end  error // io.EOF or why the body does not end there; nil before
}

func (l *lastPart) Read(p []byte) (int, error) {
	if l.end != nil {
		return 0, l.end
	}
	n, err := l.part.Read(p)
	if err != io.EOF {
		return n, err
	}
	switch _, err := l.mr.NextPart(); {
	case err == nil:
		l.end = errPartAfterFile
	case err == io.EOF:
		l.end = io.EOF
	default:
		l.end = err
	}
	return n, l.end
}

// formFields reads a multipart form of fields only: each of allowed at
// most once, no file, no other name, at most maxBytes in all. So a form
// has at most len(allowed) parts. The error message names the field.
func formFields(mr *multipart.Reader, allowed []string, maxBytes int64) (map[string]string, error) {
	out := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		name := part.FormName()
		if err := checkFormPart(part, name, allowed, out); err != nil {
			return nil, err
		}
		v, err := io.ReadAll(io.LimitReader(part, maxBytes+1))
		if err != nil {
			return nil, err
		}
		if maxBytes -= int64(len(v)); maxBytes < 0 {
			return nil, &http.MaxBytesError{Limit: maxFormBody}
		}
		out[name] = string(v)
	}
}

// formError is a multipart field the route does not take.
type formError struct{ msg string }

func (e *formError) Error() string { return e.msg }

// checkFormPart refuses a part that is not one of allowed, a repeated one,
// or a file.
func checkFormPart(part *multipart.Part, name string, allowed []string, seen map[string]string) error {
	q := strconv.Quote(mask.Clip(name))
	switch _, dup := seen[name]; {
	case !slices.Contains(allowed, name):
		return &formError{"unknown multipart field " + q + " (allowed: " + strings.Join(allowed, ", ") + ")"}
	case dup:
		return &formError{"multipart field " + q + " given more than once"}
	case part.FileName() != "":
		return &formError{"multipart field " + q + " must be a value, not a file"}
	}
	return nil
}

// pathID reads the path parameter "id" and refuses, with a 400 that names
// it, one that no stored id can be (ident.Check: empty, over 64 bytes, not
// UTF-8, white space or control characters), so it never reaches SQL; a
// column would refuse invalid UTF-8 with an error, not a miss.
func pathID(w http.ResponseWriter, r *http.Request, what string) (string, bool) {
	id := r.PathValue("id")
	if msg := ident.Check(id); msg != "" {
		WriteError(w, http.StatusBadRequest, "bad_request", what+" id in the path "+msg)
		return "", false
	}
	return id, true
}

// jobID is pathID for import and export ids, which this service makes
// (hex) and keeps in ASCII columns: MariaDB refuses to compare another
// character with them (an error, not a miss), so such an id is a 404.
func jobID(w http.ResponseWriter, r *http.Request, what string) (string, bool) {
	id, ok := pathID(w, r, what)
	if !ok {
		return "", false
	}
	if strings.IndexFunc(id, func(c rune) bool { return c > '~' }) >= 0 {
		WriteError(w, http.StatusNotFound, "not_found", "no "+what+" "+strconv.Quote(mask.Clip(id)))
		return "", false
	}
	return id, true
}
