package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Lists answer at most limit items (default defaultLimit, at most maxLimit)
// and, when there are more, an opaque next_cursor to pass back as cursor.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// pageCursor is what a cursor carries: the sort key of the last item of
// the page before. It travels as base64url JSON, opaque to clients.
type pageCursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"id"`
}

func (c pageCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadCursor = errors.New("cursor is not one this API gave")

func decodeCursor(s string) (*pageCursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errBadCursor
	}
	var c pageCursor
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" || c.CreatedAt.IsZero() {
		return nil, errBadCursor
	}
	return &c, nil
}

// page reads a list's limit and cursor, answering 400 for bad ones.
func page(w http.ResponseWriter, r *http.Request) (limit int, cursor *pageCursor, ok bool) {
	q := r.URL.Query()
	limit = defaultLimit
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			WriteError(w, http.StatusBadRequest, "bad_request", "query parameter \"limit\" must be a whole number from 1 to "+strconv.Itoa(maxLimit))
			return 0, nil, false
		}
		limit = n
	}
	if q.Has("cursor") {
		c, err := decodeCursor(q.Get("cursor"))
		if err != nil || c == nil {
			WriteError(w, http.StatusBadRequest, "bad_request", "query parameter \"cursor\": "+errBadCursor.Error())
			return 0, nil, false
		}
		cursor = c
	}
	return limit, cursor, true
}

// writePage answers a list: {"<name>":[…],"next_cursor":"…"}, next_cursor
// absent on the last page.
func writePage(w http.ResponseWriter, name string, items any, next *pageCursor) {
	out := map[string]any{name: items}
	if next != nil {
		out["next_cursor"] = next.encode()
	}
	WriteJSON(w, http.StatusOK, out)
}
