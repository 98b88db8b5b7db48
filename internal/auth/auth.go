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
	// Codec admits the payload codec (/codec) and nothing else: it is the
	// credential a Web UI's proxy holds, so whoever gets hold of it can
	// decode payloads but call no other route. It stands alone in a token.
	Codec Scope = "codec"
)

var knownScopes = []Scope{Read, Write, PII, Codec}

// Scopes is a set of scopes.
type Scopes []Scope

// Has reports whether s includes scope.
func (s Scopes) Has(scope Scope) bool { return slices.Contains(s, scope) }

// HasAny reports whether s includes at least one of scopes.
func (s Scopes) HasAny(scopes ...Scope) bool {
	return slices.ContainsFunc(scopes, s.Has)
}

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
				return nil, fmt.Errorf("PAYMENTS_API_TOKENS entry %d: unknown scope %q (want read, write, pii or codec)", i+1, sc)
			}
			if !scopes.Has(sc) {
				scopes = append(scopes, sc)
			}
		}
		if scopes.Has(Codec) && len(scopes) > 1 {
			// A codec credential that also reads or writes would open
			// the whole API to whoever holds the UI's credential.
			return nil, fmt.Errorf("PAYMENTS_API_TOKENS entry %d: the codec scope stands alone (give the token no other scope)", i+1)
		}
		if err := t.add(item.token, scopes); err != nil {
			return nil, fmt.Errorf("PAYMENTS_API_TOKENS entry %d: %w", i+1, err)
		}
	}
	return t, nil
}

// AddCodec registers token as a codec-only credential (PAYMENTS_CODEC_TOKEN):
// /codec accepts it, every other route answers 403. Errors never name the
// token.
func (t *Tokens) AddCodec(token string) error {
	if len(token) < 16 {
		return errors.New("PAYMENTS_CODEC_TOKEN: token shorter than 16 characters")
	}
	if err := t.add(token, Scopes{Codec}); err != nil {
		return fmt.Errorf("PAYMENTS_CODEC_TOKEN: %w", err)
	}
	return nil
}

// add stores token's digest with scopes, refusing a token already known.
func (t *Tokens) add(token string, scopes Scopes) error {
	d := sha256.Sum256([]byte(token))
	for _, e := range t.entries {
		if e.digest == d {
			return errors.New("token repeated")
		}
	}
	t.entries = append(t.entries, entry{digest: d, scopes: scopes})
	return nil
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

// NewCodecToken makes a random codec-only credential, which `starter dev`
// and `starter cluster` mint at every start for their Web UI's proxy.
func NewCodecToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate codec token: %w", err)
	}
	return "codec_" + hex.EncodeToString(b[:]), nil
}

// ErrNoToken and ErrBadToken are the two ways a request is unauthenticated.
var (
	ErrNoToken  = errors.New("missing bearer token")
	ErrBadToken = errors.New("unknown bearer token")
)

// FromRequest finds the request's token in the Authorization header and
// returns its scopes. Cookies are never read: a token in a cookie would be
// sent by the browser to every port of the host, and any page could make
// it ride along.
func (t *Tokens) FromRequest(r *http.Request) (Scopes, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, ErrNoToken
	}
	scheme, value, ok := strings.Cut(h, " ")
	token := strings.TrimSpace(value)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, ErrBadToken
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
