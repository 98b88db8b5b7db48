package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/encryption"
)

// IdempotencyHeader makes a POST safe to retry: the same key replays the
// first answer, the same key with another request is refused.
const IdempotencyHeader = "Idempotency-Key"

// idempotencyRetention is how long a key is honoured. After it the key is
// free again, and rows older than it are purged (at most every
// idempotencyPurgeEvery, a batch at a time, by whichever request comes).
const (
	idempotencyRetention  = 24 * time.Hour
	idempotencyPurgeEvery = 10 * time.Minute
	maxIdempotencyKey     = 255
)

var lastIdempotencyPurge atomic.Int64

// idempotencyEntry is one caller's key on one route.
type idempotencyEntry struct {
	token [32]byte
	route string
	key   string
}

func (e idempotencyEntry) aad() []byte {
	return encryption.AAD("idempotency_keys", "response", hex.EncodeToString(e.token[:])+" "+e.route+" "+e.key)
}

// storedAnswer is a stored answer: its status and body (JSON).
type storedAnswer struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// idempotent honours the Idempotency-Key header on rt: the first request
// with a key runs and its answer (unless a 5xx, which leaves the key free
// for a retry) is stored; a later one with the same key and the same
// request (method, path and JSON body, key order and spacing aside) gets
// that answer again with Idempotent-Replayed: true; one with another
// request is 422; one while the first still runs is 409. Keys are scoped
// to the caller's token and the route. Without the header nothing changes.
func (s *Server) idempotent(rt Route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(IdempotencyHeader)
		if key == "" {
			next.ServeHTTP(w, r)
			return
		}
		if !validIdempotencyKey(key) {
			WriteError(w, http.StatusBadRequest, "bad_request", IdempotencyHeader+" must be 1 to "+strconv.Itoa(maxIdempotencyKey)+" printable ASCII characters")
			return
		}
		body, ok := readBody(w, r, maxJSONBody)
		if !ok {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		e := idempotencyEntry{token: sha256.Sum256([]byte(r.Header.Get("Authorization"))), route: rt.Method + " " + rt.Path, key: key}
		reqHash := requestHash(r.Method, r.URL.Path, body)
		ctx := r.Context()
		s.purgeIdempotencyKeys(ctx)

		claimed, err := s.claimIdempotencyKey(ctx, e, reqHash)
		if err != nil {
			s.internalError(w, "idempotency key", err)
			return
		}
		if !claimed {
			s.replay(w, r, e, reqHash)
			return
		}
		rec := &teeRecorder{ResponseWriter: w}
		done := false
		defer func() {
			if !done {
				// A panic or an aborted response: free the key for a retry.
				s.releaseIdempotencyKey(e)
			}
		}()
		next.ServeHTTP(rec, r)
		done = true
		if rec.status == 0 || rec.status >= 500 {
			s.releaseIdempotencyKey(e)
			return
		}
		s.storeIdempotentAnswer(e, storedAnswer{Status: rec.status, Body: bytes.TrimSpace(rec.body.Bytes())})
	})
}

func validIdempotencyKey(k string) bool {
	if len(k) > maxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return strings.TrimSpace(k) != ""
}

// requestHash identifies a request: its method, path and body, a JSON
// body in canonical form (sorted keys, no spacing).
func requestHash(method, path string, body []byte) [32]byte {
	canon := body
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err == nil && !dec.More() {
		if b, err := json.Marshal(v); err == nil {
			canon = b
		}
	}
	h := sha256.New()
	h.Write([]byte(method + " " + path + "\n"))
	h.Write(canon)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// claimIdempotencyKey records e as running; false when the key is taken
// (and not expired).
func (s *Server) claimIdempotencyKey(ctx context.Context, e idempotencyEntry, reqHash [32]byte) (bool, error) {
	now := time.Now().UTC()
	if _, err := s.DB.ExecContext(ctx, `DELETE FROM idempotency_keys
		WHERE token_hash = ? AND route = ? AND idem_key = ? AND created_at < ?`,
		e.token[:], e.route, e.key, now.Add(-idempotencyRetention)); err != nil {
		return false, err
	}
	_, err := s.DB.ExecContext(ctx, `INSERT INTO idempotency_keys
		(token_hash, route, idem_key, request_hash, status, created_at) VALUES (?, ?, ?, ?, 0, ?)`,
		e.token[:], e.route, e.key, reqHash[:], now)
	if database.IsDuplicateKey(err) {
		return false, nil
	}
	return err == nil, err
}

// replay answers a request whose key is taken.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, e idempotencyEntry, reqHash [32]byte) {
	var row struct {
		RequestHash []byte `db:"request_hash"`
		Status      int    `db:"status"`
		Response    []byte `db:"response"`
	}
	err := s.DB.GetContext(r.Context(), &row, `SELECT request_hash, status, response FROM idempotency_keys
		WHERE token_hash = ? AND route = ? AND idem_key = ?`, e.token[:], e.route, e.key)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Released between our insert and this read: the first request
		// failed. Ask for a retry rather than run it twice here.
		w.Header().Set("Retry-After", "1")
		WriteError(w, http.StatusConflict, "idempotency_key_in_use", "a request with this "+IdempotencyHeader+" just failed; retry")
		return
	case err != nil:
		s.internalError(w, "idempotency key", err)
		return
	}
	if !bytes.Equal(row.RequestHash, reqHash[:]) {
		WriteError(w, http.StatusUnprocessableEntity, "idempotency_key_reused",
			"this "+IdempotencyHeader+" was used with another request; use a new key for a new request")
		return
	}
	if row.Status == 0 {
		w.Header().Set("Retry-After", "1")
		WriteError(w, http.StatusConflict, "idempotency_key_in_use", "the first request with this "+IdempotencyHeader+" is still running; retry")
		return
	}
	plain, err := s.Keys.Decrypt(row.Response, e.aad())
	var a storedAnswer
	if err == nil {
		err = json.Unmarshal(plain, &a)
	}
	if err != nil {
		s.internalError(w, "replay idempotent answer", err)
		return
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(a.Status)
	_, _ = w.Write(append(a.Body, '\n'))
}

// storeIdempotentAnswer keeps a, encrypted: it can hold customer data. It
// runs even when the client has gone: its retry must find the answer.
func (s *Server) storeIdempotentAnswer(e idempotencyEntry, a storedAnswer) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	plain, err := json.Marshal(a)
	var ct []byte
	if err == nil {
		ct, err = s.Keys.Encrypt(plain, e.aad())
	}
	if err == nil {
		_, err = s.DB.ExecContext(ctx, `UPDATE idempotency_keys SET status = ?, response = ?
			WHERE token_hash = ? AND route = ? AND idem_key = ?`, a.Status, ct, e.token[:], e.route, e.key)
	}
	if err != nil {
		s.Logger.Error("store idempotent answer", "route", e.route, "error", err.Error())
		s.releaseIdempotencyKey(e)
	}
}

func (s *Server) releaseIdempotencyKey(e idempotencyEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.DB.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE token_hash = ? AND route = ? AND idem_key = ? AND status = 0`,
		e.token[:], e.route, e.key); err != nil {
		s.Logger.Error("release idempotency key", "route", e.route, "error", err.Error())
	}
}

// purgeIdempotencyKeys deletes a batch of expired keys, at most once per
// idempotencyPurgeEvery in this process.
func (s *Server) purgeIdempotencyKeys(ctx context.Context) {
	now := time.Now()
	last := lastIdempotencyPurge.Load()
	if now.UnixNano()-last < int64(idempotencyPurgeEvery) || !lastIdempotencyPurge.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if _, err := s.DB.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < ? LIMIT 1000`,
		now.UTC().Add(-idempotencyRetention)); err != nil {
		s.Logger.Warn("purge idempotency keys", "error", err.Error())
	}
}

// teeRecorder writes through and keeps the status and body.
type teeRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (t *teeRecorder) WriteHeader(code int) {
	if t.status == 0 {
		t.status = code
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeRecorder) Write(b []byte) (int, error) {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	t.body.Write(b)
	return t.ResponseWriter.Write(b)
}

func (t *teeRecorder) Unwrap() http.ResponseWriter { return t.ResponseWriter }
