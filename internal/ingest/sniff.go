package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"unicode/utf8"
)

// sniffBytes is how much of an upload Sniff looks at.
const sniffBytes = 1024

// Errors of Sniff: an upload that is no import file at all, refused before
// it is staged or a job is created.
var (
	ErrEmptyUpload = errors.New("the file is empty")
	// ErrNotText is binary data: a NUL, invalid UTF-8 or a control
	// character in a CSV file's header line or an XML file's first KiB.
	ErrNotText = errors.New("the file is not text (binary data at its start): send CSV or XML")
	// ErrNotCSVOrXML is text that is neither XML nor CSV with a header line.
	ErrNotCSVOrXML = errors.New("the file is neither XML nor CSV with a header line")
)

// Sniff looks at the first KiB of an upload and refuses one that cannot be
// a CSV or XML import file: empty, binary, or text that is neither XML
// (starts with "<" after an optional BOM and whitespace) nor CSV (a header
// line with at least one comma). It returns a reader of the whole upload,
// the sniffed bytes included, so the upload still streams.
//
// Binary means a NUL, invalid UTF-8 or (in CSV) another control character
// where no bad row can excuse it: in the header line of a CSV file, or
// anywhere in the first KiB of an XML file (which such a byte makes
// malformed). A bad CSV row after the header is left to the import, which
// rejects that row and imports the others (SPEC section 5), as
// records.PlanChunks does.
func Sniff(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, sniffBytes)
	head, err := br.Peek(sniffBytes)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	full := len(head) == sniffBytes // more may follow: a cut rune at the end is fine
	if err := sniffHead(head, full); err != nil {
		return nil, err
	}
	return br, nil
}

func sniffHead(head []byte, full bool) error {
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(head)) == 0 {
		if full {
			return ErrNotCSVOrXML // a KiB of whitespace
		}
		return ErrEmptyUpload
	}
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if trimmed[0] == '<' {
		if !isText(head, full, false) {
			return ErrNotText
		}
		return nil
	}
	line, _, found := bytes.Cut(trimmed, []byte("\n"))
	if !isText(line, full && !found, true) {
		return ErrNotText
	}
	if !bytes.Contains(line, []byte(",")) {
		return ErrNotCSVOrXML
	}
	return nil
}

// isText reports whether b has no NUL and is valid UTF-8 (but for a rune
// cut at its end when cut is set) and, with controls, holds no control
// character other than tab and CR.
func isText(b []byte, cut, controls bool) bool {
	if bytes.IndexByte(b, 0) >= 0 {
		return false
	}
	valid := b
	if cut {
		// Drop a rune the KiB boundary cut in two.
		for i := 0; i < utf8.UTFMax-1 && len(valid) > 0 && !utf8.Valid(valid); i++ {
			valid = valid[:len(valid)-1]
		}
	}
	if !utf8.Valid(valid) {
		return false
	}
	if controls {
		for _, c := range b {
			if c < 0x20 && c != '\t' && c != '\r' {
				return false
			}
		}
	}
	return true
}
