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
	// ErrNotText is binary data: NUL bytes or invalid UTF-8 in the first KiB.
	ErrNotText = errors.New("the file is not text (binary data in its first KiB): send CSV or XML")
	// ErrNotCSVOrXML is text that is neither XML nor CSV with a header line.
	ErrNotCSVOrXML = errors.New("the file is neither XML nor CSV with a header line")
)

// Sniff looks at the first KiB of an upload and refuses one that cannot be
// a CSV or XML import file: empty, binary, or text that is neither XML
// (starts with "<" after an optional BOM and whitespace) nor CSV (a header
// line with at least one comma). It returns a reader of the whole upload,
// the sniffed bytes included, so the upload still streams.
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
	if bytes.IndexByte(head, 0) >= 0 {
		return ErrNotText
	}
	valid := head
	if full {
		// Drop a rune the KiB boundary cut in two.
		for i := 0; i < utf8.UTFMax-1 && len(valid) > 0 && !utf8.Valid(valid); i++ {
			valid = valid[:len(valid)-1]
		}
	}
	if !utf8.Valid(valid) {
		return ErrNotText
	}
	if trimmed := bytes.TrimLeft(head, " \t\r\n"); trimmed[0] == '<' {
		return nil
	}
	line, _, _ := bytes.Cut(head, []byte("\n"))
	if !bytes.Contains(line, []byte(",")) {
		return ErrNotCSVOrXML
	}
	return nil
}
