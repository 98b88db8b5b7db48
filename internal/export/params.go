// Package export writes orders and payments out in bulk: as CSV or XML
// files that are valid import files of their type (SPEC 5), or as JSON with
// the API's field names. Rows stream from MySQL by keyset pages over the
// primary key, decrypted (or masked) on the fly, so memory stays the same
// whatever the row count. GET /download streams one range to the client;
// the export workflow writes ranges as parts of a staged file and joins
// them (jobs.go).
package export

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/acme/payments/internal/records"
)

// Format is the syntax of an exported file.
type Format string

// The export formats. CSV and XML are import formats; JSON is one array of
// objects, NDJSON one object a line.
const (
	FormatCSV    Format = "csv"
	FormatXML    Format = "xml"
	FormatJSON   Format = "json"
	FormatNDJSON Format = "ndjson"
)

// Params choose what an export holds.
type Params struct {
	Kind   records.Kind `json:"kind"`
	Format Format       `json:"format"`
	// Status keeps only rows with this order_status or payment_status; ""
	// keeps all.
	Status string `json:"status"`
	// CreatedFrom and CreatedTo keep rows created in [CreatedFrom,
	// CreatedTo); a zero bound is open (and left out of JSON, as in
	// workflow histories).
	CreatedFrom time.Time `json:"created_from,omitzero"`
	CreatedTo   time.Time `json:"created_to,omitzero"`
	// PII shows customer_email, customer_phone and payment_details
	// unmasked; without it they are masked and the file is not a faithful
	// import file.
	PII bool `json:"pii"`
}

// ParamNames are the parameters ParseParams reads.
var ParamNames = []string{"type", "format", "status", "created_from", "created_to"}

// ParseParams reads the parameters of GET /download and POST /exports. An
// unknown parameter, a missing type or format, or a bad value is an error
// that names the parameter. pii is the caller's right to unmasked fields.
func ParseParams(v url.Values, pii bool) (Params, error) {
	for name, vals := range v {
		if !slices.Contains(ParamNames, name) {
			return Params{}, fmt.Errorf("unknown parameter %q (allowed: %s)", name, strings.Join(ParamNames, ", "))
		}
		if len(vals) > 1 {
			return Params{}, fmt.Errorf("parameter %s given %d times", name, len(vals))
		}
	}
	p := Params{Kind: records.Kind(v.Get("type")), Format: Format(v.Get("format")), Status: v.Get("status"), PII: pii}
	switch p.Kind {
	case records.KindOrders, records.KindPayments:
	case "":
		return Params{}, fmt.Errorf("type is required: %s or %s", records.KindOrders, records.KindPayments)
	default:
		return Params{}, fmt.Errorf("type %q is not %s or %s", v.Get("type"), records.KindOrders, records.KindPayments)
	}
	switch p.Format {
	case FormatCSV, FormatXML, FormatJSON, FormatNDJSON:
	case "":
		return Params{}, fmt.Errorf("format is required: csv, xml, json or ndjson")
	default:
		return Params{}, fmt.Errorf("format %q is not csv, xml, json or ndjson", v.Get("format"))
	}
	if p.Status != "" && !slices.Contains(statuses(p.Kind), p.Status) {
		return Params{}, fmt.Errorf("status %q is not one of %s for %s", p.Status, strings.Join(statuses(p.Kind), ", "), p.Kind)
	}
	var err error
	if p.CreatedFrom, err = parseBound("created_from", v.Get("created_from"), false); err != nil {
		return Params{}, err
	}
	if p.CreatedTo, err = parseBound("created_to", v.Get("created_to"), true); err != nil {
		return Params{}, err
	}
	if !p.CreatedFrom.IsZero() && !p.CreatedTo.IsZero() && !p.CreatedFrom.Before(p.CreatedTo) {
		return Params{}, fmt.Errorf("created_from %s is not before created_to %s", v.Get("created_from"), v.Get("created_to"))
	}
	return p, nil
}

func statuses(k records.Kind) []string {
	if k == records.KindOrders {
		return []string{"PENDING", "COMPLETED"}
	}
	return []string{"PENDING", "SUCCESS", "FAILED"}
}

// parseBound reads an RFC 3339 instant or a YYYY-MM-DD date (UTC). Both
// ends include what they name: created_to=2026-12-03 keeps the whole day,
// so the exclusive bound returned for an upper end is the next day, or the
// next microsecond (DATETIME(6)'s step) after an instant.
func parseBound(name, s string, upper bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseInLocation(time.DateOnly, s, time.UTC); err == nil {
		if upper {
			d = d.AddDate(0, 0, 1)
		}
		return checkYear(name, s, d)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q is not an RFC 3339 time or a YYYY-MM-DD date", name, clip(s))
	}
	t = t.UTC()
	if upper {
		t = t.Truncate(time.Microsecond).Add(time.Microsecond)
	} else if u := t.Truncate(time.Microsecond); !u.Equal(t) {
		t = u.Add(time.Microsecond) // the first stored instant not before t
	}
	return checkYear(name, s, t)
}

func checkYear(name, s string, t time.Time) (time.Time, error) {
	if y := t.Year(); y < 1970 || y > 9999 {
		return time.Time{}, fmt.Errorf("%s %q is out of range", name, clip(s))
	}
	return t, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Key is what makes two exports the same: every parameter, PII included.
func (p Params) Key() string {
	h := sha256.Sum256([]byte(strings.Join([]string{string(p.Kind), string(p.Format), p.Status,
		formatBound(p.CreatedFrom), formatBound(p.CreatedTo), fmt.Sprint(p.PII)}, "|")))
	return hex.EncodeToString(h[:])
}

func formatBound(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Values are p's parameters in ParseParams' form (PII aside), for storing
// an export's parameters and showing them.
func (p Params) Values() url.Values {
	v := url.Values{"type": {string(p.Kind)}, "format": {string(p.Format)}}
	if p.Status != "" {
		v.Set("status", p.Status)
	}
	if !p.CreatedFrom.IsZero() {
		v.Set("created_from", formatBound(p.CreatedFrom))
	}
	if !p.CreatedTo.IsZero() {
		// Stored as the inclusive last microsecond, which reads back to
		// the same exclusive bound.
		v.Set("created_to", formatBound(p.CreatedTo.Add(-time.Microsecond)))
	}
	return v
}

// Filename is the name of an export of p made at now: its type, the date,
// the status kept, and its extension.
func (p Params) Filename(now time.Time) string {
	name := string(p.Kind) + "-" + now.UTC().Format("2006-01-02")
	if p.Status != "" {
		name += "-" + strings.ToLower(p.Status)
	}
	return name + "." + string(p.Format)
}

// ContentType is the media type of an export of p.
func (p Params) ContentType() string {
	switch p.Format {
	case FormatCSV:
		return "text/csv; charset=utf-8"
	case FormatXML:
		return "application/xml; charset=utf-8"
	case FormatNDJSON:
		return "application/x-ndjson"
	}
	return "application/json"
}

// MaskedFields names the fields an export of p shows masked ("" with PII).
func (p Params) MaskedFields() string {
	switch {
	case p.PII:
		return ""
	case p.Kind == records.KindOrders:
		return "customer_email,customer_phone"
	}
	return "payment_details"
}
