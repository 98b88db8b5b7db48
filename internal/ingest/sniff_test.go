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
		// A bad row after the header is the import's reject, not a refusal.
		{"NUL in a row", "a,b\n\x00", nil},
		{"invalid UTF-8 in a row", "a,b\nA,\xc3\x28\nB,1\n", nil},
		{"blank lines before the header", "\r\n\norder_id,order_amount\n", nil},
		{"NUL in the header", "a,\x00b\nA,1\n", ErrNotText},
		{"invalid UTF-8 in the header", "a,\xc3\x28\nA,1\n", ErrNotText},
		{"control character in the header", "a,\x1bb\nA,1\n", ErrNotText},
		{"header longer than the KiB, cut rune", strings.Repeat("a,", sniffBytes/2-1) + "a\xc3\xa9", nil},
		{"PNG", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ErrNotText},
		{"gzip", "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03a,b\n", ErrNotText},
		{"zip", "PK\x03\x04\x14\x00\x00\x00\x08\x00a,b\n", ErrNotText},
		{"UTF-16", "\xff\xfeo\x00r\x00,\x00", ErrNotText},
		{"NUL in XML", "<orders>\n<order><order_id>\x00</order_id></order></orders>", ErrNotText},
		{"invalid UTF-8 in XML", "<orders>\n<order><order_id>\xff</order_id></order></orders>", ErrNotText},
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
