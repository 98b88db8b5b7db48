package ingest

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSniff(t *testing.T) {
	// A header line then a multi-byte rune cut by the 1 KiB boundary.
	cut := "order_id,order_amount,customer_email\n" + strings.Repeat("x", sniffBytes-len("order_id,order_amount,customer_email\n")-1) + "é,1\n"
	for _, c := range []struct {
		name, in string
		want     error
	}{
		{"csv", "order_id,order_amount\nA,1\n", nil},
		{"csv with BOM and CRLF", "\ufefforder_id,order_amount\r\nA,1\r\n", nil},
		{"xml after BOM and blanks", "\ufeff \n\t<orders></orders>", nil},
		{"rune cut at the boundary", cut, nil},
		{"empty", "", ErrEmptyUpload},
		{"blanks", "\n \r\n", ErrEmptyUpload},
		{"NUL", "a,b\n\x00", ErrNotText},
		{"invalid UTF-8", "a,b\n\xc3\x28", ErrNotText},
		{"no header line", "just words\n", ErrNotCSVOrXML},
		{"comma only after the first line", "words\na,b\n", ErrNotCSVOrXML},
	} {
		r, err := Sniff(strings.NewReader(c.in))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		if err == nil {
			// The whole upload is still there, sniffed bytes included.
			if b, _ := io.ReadAll(r); string(b) != c.in {
				t.Errorf("%s: reader gives %d bytes of %d", c.name, len(b), len(c.in))
			}
		}
	}
}
