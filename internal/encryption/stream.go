package encryption

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Streaming encryption of large files at rest (staged uploads, exports),
// written by [Keyring.NewEncryptWriter] and read by [Keyring.NewDecryptReader]
// or, by plaintext byte range, [Keyring.OpenDecryptRange].
//
// An encrypted stream is a fixed-size header followed by segments:
//
//	offset  size  field
//	     0     4  magic 0x89 'P' 'S' 'E'
//	     4     1  format version, 0x01
//	     5     1  key id length n, 1..32
//	     6    32  key id (n bytes), then 32-n zero bytes
//	    38    12  wrap nonce (random)
//	    50    32  file secret, AES-256-GCM-sealed under the keyring key "key id"
//	    82    16  GCM tag of the file secret
//	    98        segment 0, segment 1, ... segment N-1
//
// Segment i is AES-256-GCM(segment key, nonce_i, plaintext_i) || tag (16
// bytes), with no additional data. Every segment but the last holds exactly
// [StreamSegmentSize] plaintext bytes; the last holds 1..StreamSegmentSize,
// or 0 when the whole file is empty (an empty file is one empty segment).
//
//	nonce_i     = prefix (7 bytes) || uint32be(i) || last (0x01 for segment N-1, else 0x00)
//	key||prefix = HKDF-SHA256(secret = file secret, salt = none,
//	                          info = "acme/payments stream v1" || header (98 bytes) || aad, 39 bytes)
//
// and the file secret is sealed with additional data header[0:38] || aad.
//
// Why this shape:
//
//   - Envelope, not HKDF of the master key. The keyring keeps only cipher.AEAD
//     values, never raw key bytes (see Keyring), so the master key can only be
//     used through AES-GCM. Each file gets a fresh random 256-bit secret,
//     sealed under the keyring key exactly once; everything else is derived
//     from that secret with HKDF-SHA256. A master key thus spends one random
//     GCM nonce per file (not per segment), and the segment key is unique per
//     file, so its deterministic counter nonces can never repeat. No separate
//     HKDF salt is stored: the HKDF secret is already uniformly random and
//     used once, which is what a salt would otherwise provide.
//   - Domain separation. Every other use of the keyring AEADs (field
//     ciphertexts, Seal/Open) authenticates data starting with 0x01; the wrap
//     here authenticates data starting with the magic 0x89, so a field
//     ciphertext can never be accepted as a stream header or vice versa.
//   - Binding. The wrap authenticates the header (magic, version, key id) and
//     the caller's aad, so a wrong aad, an edited header or an unknown key
//     fails before any segment is read. The segment key is derived from the
//     whole header and the aad as well, so segments of one file are useless
//     under any other header (a segment's additional data would be redundant).
//     The nonce carries the segment index and a last-segment flag, so
//     reordering, dropping, duplicating, truncating (at or between segment
//     boundaries) and appending are all detected when the affected segment is
//     read.
//   - Fixed header size and fixed segment size make the plaintext/ciphertext
//     size mapping a pure function of the size ([StreamPlaintextSize]), so a
//     byte range of plaintext maps to a byte range of ciphertext without
//     reading anything first.
//   - 64 KiB segments: the 16-byte tag costs 0.02%, a random read of one byte
//     decrypts at most 64 KiB, and one segment buffer per stream stays small.
//     Up to 2^32 segments (256 TiB) fit the 32-bit counter.
//   - The magic starts with 0x89, which no ASCII or UTF-8 text (CSV, JSON) can
//     start with, so encrypted objects are told apart from legacy plaintext
//     ones by their first bytes ([IsEncryptedStream]).
const (
	// StreamSegmentSize is the number of plaintext bytes in every segment of
	// an encrypted stream but the last.
	StreamSegmentSize = 64 << 10

	// StreamHeaderSize is the size of an encrypted stream's header. Segment i
	// starts at ciphertext offset StreamHeaderSize + i*(StreamSegmentSize+16),
	// and holds plaintext bytes [i*StreamSegmentSize, (i+1)*StreamSegmentSize).
	StreamHeaderSize = streamWrapOff + nonceSize + streamSecretSize + tagSize // 98
)

const (
	streamMagic       = "\x89PSE"
	streamVersion     = 0x01
	streamKeyIDOff    = 4 + 2                                 // magic, version, id length
	streamWrapOff     = streamKeyIDOff + maxKeyIDLen          // 38: wrap nonce
	streamSecretSize  = 32                                    // file secret
	streamPrefixSize  = nonceSize - 4 - 1                     // 7: nonce prefix
	streamSegCTSize   = StreamSegmentSize + tagSize           // a full segment's ciphertext
	streamMaxSegments = 1 << 32                               // segment index is a uint32
	streamInfoLabel   = "acme/payments stream v1"             // HKDF info prefix
	streamMaxPlain    = streamMaxSegments * StreamSegmentSize // 256 TiB
)

var errStreamClosed = errors.New("encryption: use of a closed stream")

// IsEncryptedStream reports whether data, the first bytes of an object,
// starts like an encrypted stream (the 4-byte magic; any version), so a
// store can tell encrypted objects from legacy plaintext ones. Pass at least
// 4 bytes; StreamHeaderSize bytes are always enough. It does not
// authenticate anything: a true result only means "decrypt, do not serve".
func IsEncryptedStream(data []byte) bool {
	return len(data) >= len(streamMagic) && string(data[:len(streamMagic)]) == streamMagic
}

// StreamCiphertextSize returns the size of the encrypted stream of a
// plaintextSize-byte file: the header plus a 16-byte tag per segment.
func StreamCiphertextSize(plaintextSize int64) (int64, error) {
	if plaintextSize < 0 || plaintextSize > streamMaxPlain {
		return 0, fmt.Errorf("encryption: plaintext size %d outside 0..%d", plaintextSize, int64(streamMaxPlain))
	}
	segments := max(1, (plaintextSize+StreamSegmentSize-1)/StreamSegmentSize)
	return StreamHeaderSize + plaintextSize + segments*tagSize, nil
}

// StreamPlaintextSize returns the plaintext size of an encrypted stream of
// ciphertextSize bytes. A size no encrypted stream can have (shorter than a
// header and one tag, or ending in a partial tag) gives an error wrapping
// [ErrDecrypt]. Nothing is authenticated: a stream truncated at a segment
// boundary has a valid size, and is detected when its last segment is read.
func StreamPlaintextSize(ciphertextSize int64) (int64, error) {
	segments, lastCT, err := streamLayout(ciphertextSize)
	if err != nil {
		return 0, err
	}
	return (segments-1)*StreamSegmentSize + int64(lastCT-tagSize), nil
}

// streamLayout returns the number of segments of a stream of ciphertextSize
// bytes and the ciphertext size of its last segment.
func streamLayout(ciphertextSize int64) (segments int64, lastCT int, err error) {
	body := ciphertextSize - StreamHeaderSize
	if body < tagSize {
		return 0, 0, fmt.Errorf("encryption: %w: encrypted stream truncated (%d bytes)", ErrDecrypt, ciphertextSize)
	}
	full, rem := body/streamSegCTSize, body%streamSegCTSize
	switch {
	case rem == 0:
		segments, lastCT = full, streamSegCTSize
	case rem < tagSize:
		return 0, 0, fmt.Errorf("encryption: %w: encrypted stream ends in a partial segment tag", ErrDecrypt)
	case rem == tagSize && full > 0:
		// The writer only emits an empty last segment for an empty file.
		return 0, 0, fmt.Errorf("encryption: %w: encrypted stream ends in an empty segment", ErrDecrypt)
	default:
		segments, lastCT = full+1, int(rem)
	}
	if segments > streamMaxSegments {
		return 0, 0, fmt.Errorf("encryption: %w: encrypted stream has too many segments", ErrDecrypt)
	}
	return segments, lastCT, nil
}

// segmentCipher seals and opens the segments of one stream.
type segmentCipher struct {
	aead  cipher.AEAD
	nonce [nonceSize]byte // prefix, then index and last flag set per segment
}

// newSegmentCipher derives the segment key and nonce prefix of a stream from
// its file secret, header and aad.
func newSegmentCipher(secret, hdr, aad []byte) (*segmentCipher, error) {
	info := make([]byte, 0, len(streamInfoLabel)+len(hdr)+len(aad))
	info = append(append(append(info, streamInfoLabel...), hdr...), aad...)
	okm, err := hkdf.Key(sha256.New, secret, nil, string(info), keySize+streamPrefixSize)
	if err != nil {
		return nil, fmt.Errorf("encryption: deriving stream key: %w", err)
	}
	defer clear(okm)
	block, err := aes.NewCipher(okm[:keySize])
	if err != nil {
		return nil, fmt.Errorf("encryption: creating stream cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption: creating stream GCM: %w", err)
	}
	sc := &segmentCipher{aead: aead}
	copy(sc.nonce[:], okm[keySize:])
	return sc, nil
}

// nonceFor returns the nonce of segment i. The slice is reused by the next
// call.
func (c *segmentCipher) nonceFor(i int64, last bool) []byte {
	binary.BigEndian.PutUint32(c.nonce[streamPrefixSize:], uint32(i))
	c.nonce[nonceSize-1] = 0
	if last {
		c.nonce[nonceSize-1] = 1
	}
	return c.nonce[:]
}

// open authenticates and decrypts segment i in place: ct is overwritten and
// the plaintext returned aliases it. Nothing is returned unless the whole
// segment authenticates.
func (c *segmentCipher) open(ct []byte, i int64, last bool) ([]byte, error) {
	pt, err := c.aead.Open(ct[:0], c.nonceFor(i, last), ct, nil)
	if err != nil {
		return nil, fmt.Errorf("encryption: %w: segment %d of encrypted stream failed authentication (modified, reordered, truncated, or wrong aad)", ErrDecrypt, i)
	}
	return pt, nil
}

// newStreamHeader returns a fresh header under the primary key and the
// stream's segment cipher.
func (k *Keyring) newStreamHeader(aad []byte) (hdr []byte, sc *segmentCipher, err error) {
	master, err := k.primaryAEAD()
	if err != nil {
		return nil, nil, err
	}
	hdr = make([]byte, StreamHeaderSize)
	copy(hdr, streamMagic)
	hdr[len(streamMagic)] = streamVersion
	hdr[len(streamMagic)+1] = byte(len(k.primary))
	copy(hdr[streamKeyIDOff:], k.primary)
	secret := make([]byte, streamSecretSize)
	defer clear(secret)
	nonce := hdr[streamWrapOff : streamWrapOff+nonceSize]
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, fmt.Errorf("encryption: generating stream secret: %w", err)
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("encryption: generating nonce: %w", err)
	}
	master.Seal(hdr[streamWrapOff+nonceSize:streamWrapOff+nonceSize], nonce, secret, wrapAD(hdr, aad))
	sc, err = newSegmentCipher(secret, hdr, aad)
	if err != nil {
		return nil, nil, err
	}
	return hdr, sc, nil
}

// openStreamHeader authenticates a StreamHeaderSize-byte header against aad
// with the keyring key it names and returns the stream's segment cipher.
func (k *Keyring) openStreamHeader(hdr, aad []byte) (*segmentCipher, error) {
	if !IsEncryptedStream(hdr) {
		return nil, fmt.Errorf("encryption: %w: not an encrypted stream (bad magic)", ErrDecrypt)
	}
	if len(hdr) < StreamHeaderSize {
		return nil, fmt.Errorf("encryption: %w: encrypted stream header truncated", ErrDecrypt)
	}
	if v := hdr[len(streamMagic)]; v != streamVersion {
		return nil, fmt.Errorf("encryption: %w: unsupported encrypted stream version 0x%02x", ErrDecrypt, v)
	}
	n := int(hdr[len(streamMagic)+1])
	if n == 0 || n > maxKeyIDLen {
		return nil, fmt.Errorf("encryption: %w: invalid key id length %d in stream header", ErrDecrypt, n)
	}
	id := string(hdr[streamKeyIDOff : streamKeyIDOff+n])
	if validateKeyID(id) != nil || len(bytes.TrimLeft(hdr[streamKeyIDOff+n:streamWrapOff], "\x00")) != 0 {
		return nil, fmt.Errorf("encryption: %w: invalid key id in stream header", ErrDecrypt)
	}
	if k == nil || k.aead == nil {
		return nil, errors.New("encryption: keyring has no keys")
	}
	master, ok := k.aead(id)
	if !ok {
		return nil, fmt.Errorf("encryption: %w: %w %q", ErrDecrypt, ErrUnknownKey, id)
	}
	nonce := hdr[streamWrapOff : streamWrapOff+nonceSize]
	secret, err := master.Open(nil, nonce, hdr[streamWrapOff+nonceSize:StreamHeaderSize], wrapAD(hdr, aad))
	if err != nil {
		return nil, fmt.Errorf("encryption: %w: encrypted stream header failed authentication (wrong key or aad, or header modified)", ErrDecrypt)
	}
	defer clear(secret)
	return newSegmentCipher(secret, hdr[:StreamHeaderSize], aad)
}

// wrapAD is the additional data of the file secret: the header up to the
// wrap nonce (magic, version, key id), then the caller's aad.
func wrapAD(hdr, aad []byte) []byte {
	ad := make([]byte, 0, streamWrapOff+len(aad))
	return append(append(ad, hdr[:streamWrapOff]...), aad...)
}

// NewEncryptWriter returns a writer that encrypts everything written to it
// under the primary key into w, in the format described at
// [StreamSegmentSize]. aad (for example the object's purpose and name) is
// authenticated but not stored: the same aad must be given to decrypt, so an
// object copied to another name fails to decrypt.
//
// Nothing is written to w before the first Write or Close (so w may be a
// pipe nobody reads yet). The writer buffers one segment: a full segment is
// sealed and written once the next byte arrives, straight from the caller's
// slice when it holds whole segments, with no allocation per write. Close
// seals and writes the last segment and must be called, or the stream is
// truncated and will not decrypt; an empty stream is valid once closed.
// Close does not close w. The writer is not safe for concurrent use; the
// keyring is.
func (k *Keyring) NewEncryptWriter(w io.Writer, aad []byte) (io.WriteCloser, error) {
	hdr, sc, err := k.newStreamHeader(aad)
	if err != nil {
		return nil, err
	}
	return &encryptWriter{w: w, sc: sc, hdr: hdr, buf: make([]byte, 0, streamSegCTSize)}, nil
}

// encryptWriter is the writer returned by NewEncryptWriter.
type encryptWriter struct {
	w      io.Writer
	sc     *segmentCipher
	hdr    []byte // not yet written; nil once written
	buf    []byte // buffered plaintext of the current segment, cap streamSegCTSize
	seg    int64  // index of the current segment
	err    error  // sticky write error, or errStreamClosed
	closed bool
}

// Write implements io.Writer. A full segment is sealed only once more data
// arrives, since only Close knows which segment is the last.
func (e *encryptWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	written := 0
	for len(p) > 0 {
		if len(e.buf) == StreamSegmentSize {
			if err := e.seal(e.buf, false); err != nil {
				return written, err
			}
		}
		if len(e.buf) == 0 && len(p) > StreamSegmentSize {
			// A whole segment with more after it: seal straight from p.
			if err := e.seal(p[:StreamSegmentSize], false); err != nil {
				return written, err
			}
			written += StreamSegmentSize
			p = p[StreamSegmentSize:]
			continue
		}
		n := copy(e.buf[len(e.buf):StreamSegmentSize], p)
		e.buf = e.buf[:len(e.buf)+n]
		written += n
		p = p[n:]
	}
	return written, nil
}

// seal encrypts pt (e.buf itself, or a caller's buffer while e.buf is empty)
// as the current segment into e.buf's storage and writes it, with the header
// first if not yet written.
func (e *encryptWriter) seal(pt []byte, last bool) error {
	if e.seg >= streamMaxSegments {
		e.err = fmt.Errorf("encryption: encrypted stream exceeds %d bytes", int64(streamMaxPlain))
		return e.err
	}
	if e.hdr != nil {
		if err := writeFull(e.w, e.hdr); err != nil {
			e.err = err
			return err
		}
		e.hdr = nil
	}
	ct := e.sc.aead.Seal(e.buf[:0], e.sc.nonceFor(e.seg, last), pt, nil)
	e.buf = e.buf[:0]
	e.seg++
	if err := writeFull(e.w, ct); err != nil {
		e.err = err
		return err
	}
	return nil
}

// Close seals and writes the last segment. It does not close the underlying
// writer. Closing again returns the first Close's result.
func (e *encryptWriter) Close() error {
	if e.closed {
		if e.err == errStreamClosed {
			return nil
		}
		return e.err
	}
	e.closed = true
	if e.err != nil {
		return e.err
	}
	if err := e.seal(e.buf, true); err != nil {
		return err
	}
	e.err, e.buf = errStreamClosed, nil
	return nil
}

// writeFull writes p to w, turning a short write into an error.
func writeFull(w io.Writer, p []byte) error {
	n, err := w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("encryption: writing encrypted stream: %w", err)
	}
	return nil
}

// NewDecryptReader returns a reader of the plaintext of the encrypted stream
// r, written by [Keyring.NewEncryptWriter] with the same aad under any key in
// the ring. The header is read and authenticated before it returns, so a
// wrong aad or an unknown key id fails here (wrapping [ErrDecrypt], and
// [ErrUnknownKey] for the latter).
//
// Each segment is authenticated before any of its plaintext is returned; a
// modified, reordered, truncated or extended stream gives an error wrapping
// ErrDecrypt when the first bad segment is reached, after the plaintext of
// the good segments before it. So a consumer must treat the data as valid
// only once Read has returned io.EOF. Errors of r are returned wrapped,
// without ErrDecrypt.
func (k *Keyring) NewDecryptReader(r io.Reader, aad []byte) (io.Reader, error) {
	// One byte more than a segment: a segment is the last one exactly when
	// nothing follows it.
	buf := make([]byte, streamSegCTSize+1)
	if err := readHeader(r, buf[:StreamHeaderSize]); err != nil {
		return nil, err
	}
	sc, err := k.openStreamHeader(buf[:StreamHeaderSize], aad)
	if err != nil {
		return nil, err
	}
	return &decryptReader{r: r, sc: sc, buf: buf}, nil
}

// readHeader reads a stream header into hdr.
func readHeader(r io.Reader, hdr []byte) error {
	n, err := io.ReadFull(r, hdr)
	switch {
	case err == nil:
		return nil
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if n >= len(streamMagic) && !IsEncryptedStream(hdr[:n]) {
			return fmt.Errorf("encryption: %w: not an encrypted stream (bad magic)", ErrDecrypt)
		}
		return fmt.Errorf("encryption: %w: encrypted stream header truncated", ErrDecrypt)
	default:
		return fmt.Errorf("encryption: reading encrypted stream header: %w", err)
	}
}

// decryptReader is the reader returned by NewDecryptReader.
type decryptReader struct {
	r      io.Reader
	sc     *segmentCipher
	buf    []byte // streamSegCTSize+1: a segment and one byte of the next
	peeked bool   // buf[streamSegCTSize] holds the next segment's first byte
	pt     []byte // plaintext not yet returned, aliasing buf
	seg    int64  // index of the next segment
	err    error  // sticky; io.EOF after the last segment
}

// Read implements io.Reader.
func (d *decryptReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(d.pt) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.err = d.next()
	}
	n := copy(p, d.pt)
	d.pt = d.pt[n:]
	return n, nil
}

// next reads, authenticates and decrypts the next segment into d.pt. After
// the last segment it returns io.EOF.
func (d *decryptReader) next() error {
	if d.buf == nil {
		return io.EOF
	}
	have := 0
	if d.peeked {
		d.buf[0], have = d.buf[streamSegCTSize], 1
	}
	n, err := io.ReadFull(d.r, d.buf[have:])
	n += have
	last := false
	switch {
	case err == nil:
		n = streamSegCTSize // the extra byte belongs to the next segment
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		last = true
	default:
		return fmt.Errorf("encryption: reading encrypted stream: %w", err)
	}
	switch {
	case d.seg >= streamMaxSegments:
		return fmt.Errorf("encryption: %w: encrypted stream has too many segments", ErrDecrypt)
	case last && n < tagSize:
		return fmt.Errorf("encryption: %w: encrypted stream truncated", ErrDecrypt)
	case last && n == tagSize && d.seg > 0:
		return fmt.Errorf("encryption: %w: encrypted stream ends in an empty segment", ErrDecrypt)
	}
	pt, err := d.sc.open(d.buf[:n], d.seg, last)
	if err != nil {
		return err
	}
	d.pt, d.peeked = pt, !last
	d.seg++
	if last {
		d.buf = nil // d.pt keeps the plaintext alive until it is read
	}
	return nil
}

// OpenDecryptRange returns a reader of plaintext bytes [off, off+n) of an
// encrypted stream of ciphertextSize bytes (n < 0, or a range past the end,
// reads to the end of the plaintext; off may equal the plaintext size, for
// an empty range). open must return a reader of the n ciphertext bytes
// starting at off, as blob.Bucket.NewRangeReader does.
//
// It reads only the header and the segments overlapping the range, in at
// most two calls of open (one when the range starts in the first segment).
// The header is authenticated before OpenDecryptRange returns, so a wrong
// aad or an unknown key fails here (wrapping [ErrDecrypt], and
// [ErrUnknownKey] for the latter); each segment is authenticated before any
// of its plaintext is returned. Segments outside the range are not checked,
// so a stream truncated or modified elsewhere still serves genuine bytes of
// the range; a range touching the end of the plaintext detects truncation
// and appended data. The reader must be closed; it closes the open reader.
func (k *Keyring) OpenDecryptRange(ctx context.Context, ciphertextSize int64, open func(ctx context.Context, off, n int64) (io.ReadCloser, error), aad []byte, off, n int64) (io.ReadCloser, error) {
	segments, lastCT, err := streamLayout(ciphertextSize)
	if err != nil {
		return nil, err
	}
	size := (segments-1)*StreamSegmentSize + int64(lastCT-tagSize)
	if off < 0 || off > size {
		return nil, fmt.Errorf("encryption: range offset %d outside the %d-byte plaintext", off, size)
	}
	end := size
	if n >= 0 && n < size-off {
		end = off + n
	}

	first, lastSeg := off/StreamSegmentSize, (end-1)/StreamSegmentSize
	ctStart := StreamHeaderSize + first*streamSegCTSize
	ctEnd := min(StreamHeaderSize+(lastSeg+1)*streamSegCTSize, ciphertextSize)
	if off == end {
		ctStart, ctEnd = StreamHeaderSize, StreamHeaderSize // header only
	}

	hdr := make([]byte, StreamHeaderSize)
	var body io.ReadCloser
	if ctStart == StreamHeaderSize && ctEnd > ctStart {
		// The range starts in segment 0: one read for header and segments.
		if body, err = open(ctx, 0, ctEnd); err != nil {
			return nil, fmt.Errorf("encryption: opening encrypted stream: %w", err)
		}
		if err = readHeader(body, hdr); err != nil {
			body.Close()
			return nil, err
		}
	} else {
		hr, err := open(ctx, 0, StreamHeaderSize)
		if err != nil {
			return nil, fmt.Errorf("encryption: opening encrypted stream: %w", err)
		}
		err = readHeader(hr, hdr)
		hr.Close()
		if err != nil {
			return nil, err
		}
	}
	sc, err := k.openStreamHeader(hdr, aad)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	if off == end {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if body == nil {
		if body, err = open(ctx, ctStart, ctEnd-ctStart); err != nil {
			return nil, fmt.Errorf("encryption: opening encrypted stream: %w", err)
		}
	}
	return &rangeReader{
		body:      body,
		sc:        sc,
		buf:       make([]byte, streamSegCTSize),
		seg:       first,
		lastSeg:   segments - 1,
		lastCT:    lastCT,
		skip:      int(off - first*StreamSegmentSize),
		remaining: end - off,
	}, nil
}

// rangeReader is the reader returned by OpenDecryptRange.
type rangeReader struct {
	body      io.ReadCloser // ciphertext from segment seg on
	sc        *segmentCipher
	buf       []byte
	pt        []byte // plaintext not yet returned, aliasing buf
	seg       int64  // index of the next segment to read
	lastSeg   int64  // index of the stream's last segment
	lastCT    int    // ciphertext size of the stream's last segment
	skip      int    // plaintext bytes to drop from the next segment
	remaining int64  // plaintext bytes of the range not yet decrypted
	err       error  // sticky; io.EOF at the end of the range
}

// Read implements io.Reader.
func (r *rangeReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(r.pt) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.remaining == 0 {
			r.err = io.EOF
			continue
		}
		r.err = r.next()
	}
	n := copy(p, r.pt)
	r.pt = r.pt[n:]
	return n, nil
}

// next reads, authenticates and decrypts segment r.seg into r.pt.
func (r *rangeReader) next() error {
	last := r.seg == r.lastSeg
	ctLen := streamSegCTSize
	if last {
		ctLen = r.lastCT
	}
	ct := r.buf[:ctLen]
	if _, err := io.ReadFull(r.body, ct); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("encryption: %w: encrypted stream shorter than its stated size", ErrDecrypt)
		}
		return fmt.Errorf("encryption: reading encrypted stream: %w", err)
	}
	pt, err := r.sc.open(ct, r.seg, last)
	if err != nil {
		return err
	}
	if r.skip > len(pt) {
		return fmt.Errorf("encryption: %w: encrypted stream segment %d too short", ErrDecrypt, r.seg)
	}
	pt = pt[r.skip:]
	if int64(len(pt)) > r.remaining {
		pt = pt[:r.remaining]
	}
	r.pt, r.skip = pt, 0
	r.remaining -= int64(len(pt))
	r.seg++
	return nil
}

// Close closes the underlying ciphertext reader.
func (r *rangeReader) Close() error {
	if r.body == nil {
		return nil
	}
	err := r.body.Close()
	r.body, r.buf, r.pt, r.err = nil, nil, nil, errStreamClosed
	return err
}
