// Package webhook verifies and parses payment gateway callbacks (SPEC
// section 6, POST /webhooks/{gateway}).
//
// A callback carries the header
//
//	X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>
//
// The timestamp is part of the signed text, so a captured callback cannot
// be replayed with a fresh timestamp, and Verify refuses timestamps more
// than Tolerance away from now. A gateway rotating its secret may send
// several v1 entries, one per secret; any one matching is enough.
package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/acme/payments/internal/mask"
)

// Header is the HTTP header that carries the signature.
const Header = "X-Signature"

// Tolerance is how far a signature's timestamp may be from the receiver's
// clock, in either direction, to allow for clock skew and delivery delay
// while bounding how long a captured callback stays replayable.
const Tolerance = 5 * time.Minute

// MaxBodyBytes bounds a callback body: gateway results are small JSON
// documents.
const MaxBodyBytes = 64 << 10

// maxSignatures bounds the v1 entries checked per header, so a hostile
// header cannot make Verify compute many HMACs.
const maxSignatures = 8

// Verification errors, tested with errors.Is. All of them mean the callback
// must be refused (401) and nothing recorded.
var (
	// ErrMissingSignature: no signature header, or an empty one.
	ErrMissingSignature = errors.New("webhook: missing signature")
	// ErrBadSignature: a malformed header, or no v1 entry matching the
	// secret, timestamp and body.
	ErrBadSignature = errors.New("webhook: bad signature")
	// ErrStale: a correct signature whose timestamp is more than Tolerance
	// away from now (a replay, or a badly skewed clock).
	ErrStale = errors.New("webhook: signature timestamp outside tolerance")
)

// ErrInvalidResult is wrapped by every ParseResult error.
var ErrInvalidResult = errors.New("webhook: invalid gateway result")

// Sign returns the X-Signature header value for body sent at t, signed with
// secret: "t=<unix seconds>,v1=<lower-case hex HMAC-SHA256>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// mac is HMAC-SHA256(secret, ts + "." + body), over the timestamp text
// exactly as it appears in the header.
func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks an X-Signature header value against body and secret at
// time now. It returns nil only when the header is well formed, one of its
// v1 entries is the HMAC of its timestamp and body under secret (compared
// in constant time), and the timestamp is within Tolerance of now (the
// boundary included). Otherwise the error wraps ErrMissingSignature,
// ErrBadSignature or ErrStale; it never contains the header's signatures
// or the body.
//
// The header is parsed strictly: comma-separated key=value entries without
// spaces, exactly one t (ASCII digits), at least one v1 (64 hex digits).
// Entries with other keys (future schemes such as v2) are ignored.
func Verify(secret []byte, header string, body []byte, now time.Time) error {
	if header == "" {
		return ErrMissingSignature
	}
	if len(secret) == 0 {
		// An empty key makes the HMAC forgeable by anyone: a configuration
		// error, never a pass.
		return fmt.Errorf("%w: no secret configured", ErrBadSignature)
	}
	ts, sigs, err := parseHeader(header)
	if err != nil {
		return err
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		// Check every entry, not just until the first match, so timing
		// does not tell which entry matched.
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: no v1 entry matches", ErrBadSignature)
	}
	// Checked after the signature so ErrStale means a genuine but old (or
	// early) callback, which points at replays or clock skew.
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp out of range", ErrBadSignature)
	}
	if !withinTolerance(sec, now.Unix()) {
		return fmt.Errorf("%w: timestamp is more than %v from now", ErrStale, Tolerance)
	}
	return nil
}

// withinTolerance reports whether |nowSec - sec| <= Tolerance, in whole
// seconds and without overflow for any nowSec (sec is never negative:
// parseHeader accepts digits only, at most 18 of them).
func withinTolerance(sec, nowSec int64) bool {
	tol := int64(Tolerance / time.Second)
	if nowSec >= sec {
		return nowSec-sec <= tol // both non-negative here: no overflow
	}
	// sec > nowSec; nowSec may be hugely negative, so avoid sec - nowSec.
	return nowSec >= -tol && sec-nowSec <= tol
}

// parseHeader splits a header value into its timestamp text and decoded v1
// signatures.
func parseHeader(header string) (ts string, sigs [][]byte, err error) {
	malformed := func(why string) (string, [][]byte, error) {
		return "", nil, fmt.Errorf("%w: malformed header: %s", ErrBadSignature, why)
	}
	haveT := false
	for entry := range strings.SplitSeq(header, ",") {
		key, value, found := strings.Cut(entry, "=")
		if !found || key == "" {
			return malformed("entry without key=value")
		}
		switch key {
		case "t":
			if haveT {
				return malformed("more than one t")
			}
			if !allDigits(value) || len(value) > 18 {
				return malformed("t is not a unix time in seconds")
			}
			ts, haveT = value, true
		case "v1":
			if len(value) != 2*sha256.Size {
				return malformed("v1 is not 64 hex digits")
			}
			sig, err := hex.DecodeString(value)
			if err != nil {
				return malformed("v1 is not 64 hex digits")
			}
			if len(sigs) == maxSignatures {
				return malformed(fmt.Sprintf("more than %d v1 entries", maxSignatures))
			}
			sigs = append(sigs, sig)
		default:
			// Another scheme: not ours to check, and ignoring it lets a
			// gateway add one before we support it.
		}
	}
	if !haveT {
		return malformed("no t")
	}
	if len(sigs) == 0 {
		return malformed("no v1")
	}
	return ts, sigs, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Result is a gateway's final word on a payment attempt, the JSON body of
// a callback.
type Result struct {
	PaymentID string `json:"payment_id"`
	// Status is SUCCESS or FAILED.
	Status string `json:"status"`
	// Amount is optional: the amount the gateway settled, as an exact
	// decimal string in the major unit ("12.30"), to be parsed with the
	// payment's currency (money.Parse) and compared with the stored amount.
	Amount        string `json:"amount"`
	GatewayRef    string `json:"gateway_ref"`
	FailureReason string `json:"failure_reason"`
}

// ParseResult decodes a callback body strictly: one JSON object of at most
// MaxBodyBytes with only Result's fields (unknown fields and trailing data
// are refused), a non-empty payment_id, status SUCCESS or FAILED, and an
// amount, if present, of the form DIGITS or DIGITS.DIGITS (its scale is
// checked later against the currency). Errors wrap ErrInvalidResult and
// never echo field values.
func ParseResult(body []byte) (Result, error) {
	var r Result
	if len(body) > MaxBodyBytes {
		return r, fmt.Errorf("%w: body is %d bytes, at most %d allowed", ErrInvalidResult, len(body), MaxBodyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrInvalidResult, jsonError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Result{}, fmt.Errorf("%w: data after the JSON object", ErrInvalidResult)
	}
	switch {
	case r.PaymentID == "":
		return Result{}, fmt.Errorf("%w: payment_id is missing", ErrInvalidResult)
	case r.Status != "SUCCESS" && r.Status != "FAILED":
		return Result{}, fmt.Errorf("%w: status must be SUCCESS or FAILED", ErrInvalidResult)
	case r.Amount != "" && !isDecimal(r.Amount):
		return Result{}, fmt.Errorf("%w: amount must be a plain decimal string such as \"12.30\"", ErrInvalidResult)
	}
	return r, nil
}

// jsonError keeps what helps a gateway developer (syntax position, field
// and type) and drops anything that could quote the body.
func jsonError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON (at byte %d)", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %s must be a JSON %s", typ.Field, typ.Type.Kind())
		}
		return "body must be a JSON object"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The field name is chosen by the sender, not customer data;
		// clipped so a huge one cannot flood logs.
		return "unknown field " + mask.Clip(strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return "not a valid result object"
}

// isDecimal reports whether s is DIGITS or DIGITS.DIGITS (ASCII).
func isDecimal(s string) bool {
	intPart, frac, hasDot := strings.Cut(s, ".")
	return allDigits(intPart) && (!hasDot || allDigits(frac))
}
