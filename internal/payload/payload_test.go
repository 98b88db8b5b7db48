package payload_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/acme/payments/internal/payload"
)

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"ImportID": "import_id", "RowsTotal": "rows_total", "PII": "pii", "UpTo": "up_to",
		"HTTPServer": "http_server", "OrderID": "order_id", "Next": "next", "FirstLine": "first_line",
		"Rows2Go": "rows2_go", "rows_total": "rows_total", "state": "state",
	} {
		if got := payload.SnakeCase(in); got != want {
			t.Errorf("SnakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

type inner struct {
	FirstLine int64 `json:"first_line"`
}

func (i *inner) UnmarshalJSON(b []byte) error {
	type plain inner
	return payload.Unmarshal(b, (*plain)(i))
}

type outer struct {
	ImportID string  `json:"import_id"`
	Chunks   []inner `json:"chunks"`
	Inner    *inner  `json:"inner"`
}

func (o *outer) UnmarshalJSON(b []byte) error {
	type plain outer
	return payload.Unmarshal(b, (*plain)(o))
}

// Both shapes decode to the same value, nested types included, and a key
// given in both shapes takes the snake_case one.
func TestUnmarshalReadsBothShapes(t *testing.T) {
	want := outer{ImportID: "imp-1", Chunks: []inner{{FirstLine: 2}, {FirstLine: 7}}, Inner: &inner{FirstLine: 9}}
	for _, in := range []string{
		`{"ImportID":"imp-1","Chunks":[{"FirstLine":2},{"FirstLine":7}],"Inner":{"FirstLine":9}}`,
		`{"import_id":"imp-1","chunks":[{"first_line":2},{"FirstLine":7}],"inner":{"first_line":9}}`,
		`{"ImportID":"old","import_id":"imp-1","chunks":[{"first_line":2},{"first_line":7}],"Inner":{"first_line":9}}`,
	} {
		var got outer
		if err := json.Unmarshal([]byte(in), &got); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got.ImportID != want.ImportID || len(got.Chunks) != 2 || got.Chunks[1] != want.Chunks[1] || got.Inner == nil || *got.Inner != *want.Inner {
			t.Fatalf("%s: got %+v", in, got)
		}
	}
	var o outer
	if err := json.Unmarshal([]byte(`[1]`), &o); err == nil {
		t.Fatal("an array decoded as an object")
	}
	o = outer{ImportID: "kept"}
	if err := json.Unmarshal([]byte(`null`), &o); err != nil || o.ImportID != "kept" {
		t.Fatalf("null: %+v %v", o, err)
	}
}

func TestDurationReadsStringsAndLegacyNumbers(t *testing.T) {
	b, err := json.Marshal(payload.Duration(15 * time.Minute))
	if err != nil || string(b) != `"15m0s"` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	for in, want := range map[string]time.Duration{
		`"15m0s"`: 15 * time.Minute, `"1.5s"`: 1500 * time.Millisecond, `900000000000`: 15 * time.Minute, `0`: 0, `"0s"`: 0,
	} {
		var d payload.Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("unmarshal %s: %v %v, want %v", in, time.Duration(d), err, want)
		}
	}
	for _, bad := range []string{`"soon"`, `1.5`, `true`} {
		var d payload.Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
}
