// Package auth holds the HTTP API's bearer tokens and their scopes.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Scope is a permission a token carries.
type Scope string

// The scopes of SPEC section 6.
const (
	Read  Scope = "read"  // GET endpoints
	Write Scope = "write" // uploads, orders, payments, exports, cancels
	PII   Scope = "pii"   // unmasked sensitive fields, the payload codec
)

var knownScopes = []Scope{Read, Write, PII}

// Scopes is a set of scopes.
type Scopes []Scope

// Has reports whether s includes scope.
func (s Scopes) Has(scope Scope) bool { return slices.Contains(s, scope) }

// String joins the scopes the way PAYMENTS_API_TOKENS writes them.
func (s Scopes) String() string {
	parts := make([]string, len(s))
	for i, sc := range s {
		parts[i] = string(sc)
	}
	return strings.Join(parts, "+")
}

// Tokens maps bearer tokens to their scopes. Tokens are kept only as SHA-256
// digests so a dump of the process's configuration does not reveal them.
type Tokens struct {
	entries []entry
}

type entry struct {
	digest [32]byte
	scopes Scopes
}

// tokenEntry is one "token:scope+scope" entry of PAYMENTS_API_TOKENS, split
// and trimmed but not validated; ok is false without a colon.
type tokenEntry struct {
	token  string
	scopes []Scope
	ok     bool
}

// splitTokens splits a PAYMENTS_API_TOKENS spec into its entries.
func splitTokens(spec string) []tokenEntry {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil
	}
	var out []tokenEntry
	for _, item := range strings.Split(spec, ",") {
		token, scopeText, ok := strings.Cut(strings.TrimSpace(item), ":")
		e := tokenEntry{token: token, ok: ok}
		for _, s := range strings.Split(scopeText, "+") {
			e.scopes = append(e.scopes, Scope(strings.TrimSpace(s)))
		}
		out = append(out, e)
	}
	return out
}

// ParseTokens reads PAYMENTS_API_TOKENS: "token:scope+scope,token2:scope".
// Errors name the entry's position, never the token.
func ParseTokens(spec string) (*Tokens, error) {
	t := &Tokens{}
	for i, item := range splitTokens(spec) {
		if !item.ok || item.token == "" {
			return nil, fmt.Errorf("PAYMENTS_API_TOKENS entry %d: want token:scope+scope", i+1)
		}
		if len(item.token) < 8 {
			return nil, fmt.Errorf("PAYMENTS_API_TOKENS entry %d: token shorter than 8 characters", i+1)
		}
		var scopes Scopes
		for _, sc := range item.scopes {
			if !slices.Contains(knownScopes, sc) {
				return nil, fmt.Errorf("PAYMENTS_API_TOKENS entry %d: unknown scope %q (want read, write or pii)", i+1, sc)
			}
			if !scopes.Has(sc) {
				scopes = append(scopes, sc)
			}
		}
		d := sha256.Sum256([]byte(item.token))
		for _, e := range t.entries {
			if e.digest == d {
				return nil, fmt.Errorf("PAYMENTS_API_TOKENS entry %d: token repeated", i+1)
			}
		}
		t.entries = append(t.entries, entry{digest: d, scopes: scopes})
	}
	return t, nil
}

// TokenWithScope returns the first token of a PAYMENTS_API_TOKENS spec that
// has scope, or "" for none: the development UI needs a pii token in the
// clear. It reads the spec as ParseTokens does.
func TokenWithScope(spec string, scope Scope) string {
	for _, e := range splitTokens(spec) {
		if e.ok && slices.Contains(e.scopes, scope) {
			return e.token
		}
	}
	return ""
}

// Len is the number of configured tokens.
func (t *Tokens) Len() int { return len(t.entries) }

// Lookup returns the scopes of token, comparing digests in constant time.
func (t *Tokens) Lookup(token string) (Scopes, bool) {
	d := sha256.Sum256([]byte(token))
	var found Scopes
	ok := false
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(d[:], e.digest[:]) == 1 {
			found, ok = e.scopes, true
		}
	}
	return found, ok
}

// NewDevToken makes a random token with every scope, for `starter dev` when
// no tokens are configured.
func NewDevToken() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate development token: %w", err)
	}
	return "dev_" + hex.EncodeToString(b[:]), nil
}

// ErrNoToken and ErrBadToken are the two ways a request is unauthenticated.
var (
	ErrNoToken  = errors.New("missing bearer token")
	ErrBadToken = errors.New("unknown bearer token")
)

// CookieName is the cookie the embedded development UI carries so that its
// calls to the payload codec are authenticated (browsers send cookies to the
// same host on any port).
const CookieName = "payments_codec_token"

// FromRequest finds the request's token in the Authorization header, or in
// the codec cookie when allowCookie is set, and returns its scopes.
func (t *Tokens) FromRequest(r *http.Request, allowCookie bool) (Scopes, error) {
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, value, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(value) == "" {
			return nil, ErrBadToken
		}
		token = strings.TrimSpace(value)
	} else if allowCookie {
		if c, err := r.Cookie(CookieName); err == nil {
			token = c.Value
		}
	}
	if token == "" {
		return nil, ErrNoToken
	}
	scopes, ok := t.Lookup(token)
	if !ok {
		return nil, ErrBadToken
	}
	return scopes, nil
}

type scopesKey struct{}

// WithScopes returns ctx carrying the caller's scopes.
func WithScopes(ctx context.Context, s Scopes) context.Context {
	return context.WithValue(ctx, scopesKey{}, s)
}

// ScopesFrom returns the caller's scopes stored by WithScopes.
func ScopesFrom(ctx context.Context) Scopes {
	s, _ := ctx.Value(scopesKey{}).(Scopes)
	return s
}
