package records

import (
	"io"
)

// source is a buffered reader over the file (or a chunk of it) that keeps
// track of file offsets and that the CSV and XML scanners look into directly.
type source struct {
	rd     io.Reader
	buf    []byte
	r, w   int   // buf[r:w] is buffered, unread data
	bufOff int64 // file offset of buf[0]
	line   int64 // line of buf[r] (maintained by the CSV scanner)
	eof    bool
	max    int // MaxRecordBytes
}

const initialBuffer = 64 << 10

func newSource(r io.Reader, off, line int64, max int) *source {
	return &source{rd: r, buf: make([]byte, initialBuffer), bufOff: off, line: line, max: max}
}

// fill moves the unread data to the front of the buffer (growing it when it
// is full) and reads more. At EOF it sets s.eof; it returns read errors.
func (s *source) fill() error {
	if s.eof {
		return nil
	}
	if s.r > 0 {
		n := copy(s.buf, s.buf[s.r:s.w])
		s.bufOff += int64(s.r)
		s.w = n
		s.r = 0
	}
	if s.w == len(s.buf) {
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf[:s.w])
		s.buf = nb
	}
	for tries := 0; ; tries++ {
		n, err := s.rd.Read(s.buf[s.w:])
		s.w += n
		if err == io.EOF {
			s.eof = true
			return nil
		}
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if tries > 100 {
			return io.ErrNoProgress
		}
	}
}

// discard drops the buffered data (read or not).
func (s *source) discard() {
	s.bufOff += int64(s.w)
	s.r, s.w = 0, 0
}
