package encryption

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// The format constants, spelled out independently of stream.go.
const (
	tSeg   = 65536
	tHdr   = 98
	tSegCT = tSeg + 16
)

var streamAAD = []byte("staging/upload-42.csv")

// testPlaintext returns n deterministic pseudo-random bytes.
func testPlaintext(n int, seed uint64) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 's', 't', 'r'}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// encryptStream encrypts pt with writes of the given sizes (cycled; nil: one
// write).
func encryptStream(tb testing.TB, k *Keyring, pt, aad []byte, chunks ...int) []byte {
	tb.Helper()
	var out bytes.Buffer
	w, err := k.NewEncryptWriter(&out, aad)
	if err != nil {
		tb.Fatalf("NewEncryptWriter: %v", err)
	}
	rest := pt
	for i := 0; len(rest) > 0; i++ {
		n := len(rest)
		if len(chunks) > 0 {
			n = min(n, chunks[i%len(chunks)])
		}
		m, err := w.Write(rest[:n])
		if err != nil || m != n {
			tb.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	return out.Bytes()
}

// decryptStream decrypts ct sequentially, returning what was read before any
// error.
func decryptStream(k *Keyring, ct, aad []byte) ([]byte, error) {
	r, err := k.NewDecryptReader(bytes.NewReader(ct), aad)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// rangeSource serves ciphertext byte ranges like blob.Bucket.NewRangeReader
// and records what was asked of it.
type rangeSource struct {
	data   []byte
	mu     sync.Mutex
	calls  [][2]int64
	open   int // readers not yet closed
	failAt int // fail the failAt'th open call (1-based); 0: never
}

func (s *rangeSource) Open(_ context.Context, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, [2]int64{off, n})
	if len(s.calls) == s.failAt {
		return nil, errors.New("store unavailable")
	}
	if off < 0 || n < 0 || off+n > int64(len(s.data)) {
		return nil, fmt.Errorf("range [%d, %d+%d) outside the %d-byte object", off, off, n, len(s.data))
	}
	s.open++
	return &countingCloser{Reader: bytes.NewReader(s.data[off : off+n]), s: s}, nil
}

type countingCloser struct {
	io.Reader
	s      *rangeSource
	closed bool
}

func (c *countingCloser) Close() error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.s.open--
	}
	return nil
}

// readRange reads plaintext [off, off+n) of ct through OpenDecryptRange.
func readRange(k *Keyring, src *rangeSource, aad []byte, off, n int64) ([]byte, error) {
	r, err := k.OpenDecryptRange(context.Background(), int64(len(src.data)), src.Open, aad, off, n)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return got, err
}

func streamSizes() []int {
	return []int{0, 1, 100, tSeg - 1, tSeg, tSeg + 1, 2 * tSeg, 3*tSeg + 7, 3<<20 + 5}
}

func TestStreamRoundTrip(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	for _, size := range streamSizes() {
		pt := testPlaintext(size, uint64(size))
		chunkings := [][]int{nil, {1000}, {tSeg}, {tSeg + 1}, {7, tSeg - 7, 3 * tSeg, 1}}
		if size <= 2*tSeg {
			chunkings = append(chunkings, []int{1})
		}
		for _, chunks := range chunkings {
			ct := encryptStream(t, k, pt, streamAAD, chunks...)
			wantCT, err := StreamCiphertextSize(int64(size))
			if err != nil || int64(len(ct)) != wantCT {
				t.Fatalf("size %d: len(ciphertext) = %d, StreamCiphertextSize = %d, %v", size, len(ct), wantCT, err)
			}
			if p, err := StreamPlaintextSize(int64(len(ct))); err != nil || p != int64(size) {
				t.Errorf("size %d: StreamPlaintextSize = %d, %v", size, p, err)
			}
			if !IsEncryptedStream(ct) {
				t.Errorf("size %d: IsEncryptedStream(ciphertext) = false", size)
			}
			if size >= 16 && bytes.Contains(ct, pt[:16]) {
				t.Errorf("size %d: ciphertext contains plaintext", size)
			}
			got, err := decryptStream(k, ct, streamAAD)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("size %d, writes %v: round trip: %d bytes, %v", size, chunks, len(got), err)
			}
		}
	}
}

// TestStreamReaderContract runs the io.Reader conformance checks of
// testing/iotest on both readers, over awkward underlying readers.
func TestStreamReaderContract(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	for _, size := range []int{0, 1, tSeg, tSeg + 1, 3*tSeg + 7} {
		pt := testPlaintext(size, 1)
		ct := encryptStream(t, k, pt, streamAAD)
		for name, wrap := range map[string]func(io.Reader) io.Reader{
			"plain":    func(r io.Reader) io.Reader { return r },
			"onebyte":  iotest.OneByteReader,
			"half":     iotest.HalfReader,
			"dataerr":  iotest.DataErrReader,
			"timeout":  func(r io.Reader) io.Reader { return iotest.TimeoutReader(r) },
			"onebyte2": func(r io.Reader) io.Reader { return iotest.DataErrReader(iotest.OneByteReader(r)) },
		} {
			if size > tSeg+1 && name == "onebyte" {
				continue // slow, and covered by the smaller sizes
			}
			r, err := k.NewDecryptReader(wrap(bytes.NewReader(ct)), streamAAD)
			if name == "timeout" {
				// The second read of the underlying reader fails: the
				// header is the first, so either setup or reading fails, and
				// the error must be passed through, not as ErrDecrypt.
				if err == nil {
					_, err = io.ReadAll(r)
				}
				if !errors.Is(err, iotest.ErrTimeout) || errors.Is(err, ErrDecrypt) {
					t.Errorf("size %d: reader error passed as %v, want ErrTimeout without ErrDecrypt", size, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("size %d %s: NewDecryptReader: %v", size, name, err)
			}
			if err := iotest.TestReader(r, pt); err != nil {
				t.Errorf("size %d %s: decrypt reader: %v", size, name, err)
			}
		}
		src := &rangeSource{data: ct}
		r, err := k.OpenDecryptRange(context.Background(), int64(len(ct)), src.Open, streamAAD, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		if err := iotest.TestReader(r, pt); err != nil {
			t.Errorf("size %d: range reader: %v", size, err)
		}
		r.Close()
	}
}

// streamSealFixed builds an encrypted stream from the documented format,
// independently of stream.go, with caller-chosen randomness.
func streamSealFixed(tb testing.TB, key []byte, id string, secret, wrapNonce, pt, aad []byte) []byte {
	tb.Helper()
	var segs [][]byte
	for i := 0; ; i++ {
		segs = append(segs, pt[min(i*tSeg, len(pt)):min((i+1)*tSeg, len(pt))])
		if (i+1)*tSeg >= len(pt) {
			return streamSealSegments(tb, key, id, secret, wrapNonce, aad, segs)
		}
	}
}

// streamSealSegments builds an encrypted stream of the given segment
// plaintexts, whatever their sizes, the last one flagged as last.
func streamSealSegments(tb testing.TB, key []byte, id string, secret, wrapNonce, aad []byte, segs [][]byte) []byte {
	tb.Helper()
	gcm := func(key []byte) cipher.AEAD {
		block, err := aes.NewCipher(key)
		if err != nil {
			tb.Fatal(err)
		}
		a, err := cipher.NewGCM(block)
		if err != nil {
			tb.Fatal(err)
		}
		return a
	}
	hdr := []byte{0x89, 'P', 'S', 'E', 0x01, byte(len(id))}
	hdr = append(hdr, id...)
	hdr = append(hdr, make([]byte, 32-len(id))...)
	hdr = append(hdr, wrapNonce...)
	hdr = gcm(key).Seal(hdr, wrapNonce, secret, append(bytes.Clone(hdr[:38]), aad...))
	if len(hdr) != tHdr {
		tb.Fatalf("test header is %d bytes", len(hdr))
	}
	okm, err := hkdf.Key(sha256.New, secret, nil, "acme/payments stream v1"+string(hdr)+string(aad), 39)
	if err != nil {
		tb.Fatal(err)
	}
	seg := gcm(okm[:32])
	out := bytes.Clone(hdr)
	for i, pt := range segs {
		nonce := make([]byte, 12)
		copy(nonce, okm[32:])
		binary.BigEndian.PutUint32(nonce[7:], uint32(i))
		if i == len(segs)-1 {
			nonce[11] = 1
		}
		out = seg.Seal(out, nonce, pt, nil)
	}
	return out
}

func TestStreamKnownFormat(t *testing.T) {
	k := mustRing(t, keyEntry("key-2024.01_a", key1))
	secret := bytes.Repeat([]byte{3}, 32)
	nonce := bytes.Repeat([]byte{4}, 12)
	for _, size := range []int{0, 5, tSeg, 2*tSeg + 3} {
		pt := testPlaintext(size, 9)
		ct := streamSealFixed(t, key1, "key-2024.01_a", secret, nonce, pt, streamAAD)
		got, err := decryptStream(k, ct, streamAAD)
		if err != nil || !bytes.Equal(got, pt) {
			t.Errorf("size %d: decrypting an independently built stream: %d bytes, %v", size, len(got), err)
		}
		src := &rangeSource{data: ct}
		if got, err := readRange(k, src, streamAAD, int64(size/2), -1); err != nil || !bytes.Equal(got, pt[size/2:]) {
			t.Errorf("size %d: range read of an independently built stream: %d bytes, %v", size, len(got), err)
		}
	}

	// The writer's header has the documented fields.
	ct := encryptStream(t, k, []byte("x"), streamAAD)
	id := "key-2024.01_a"
	want := append([]byte{0x89, 'P', 'S', 'E', 0x01, byte(len(id))}, id...)
	want = append(want, make([]byte, 32-len(id))...)
	if !bytes.HasPrefix(ct, want) {
		t.Errorf("header = % x, want prefix % x", ct[:38], want)
	}
	if StreamHeaderSize != tHdr || StreamSegmentSize != tSeg {
		t.Errorf("StreamHeaderSize, StreamSegmentSize = %d, %d; want %d, %d", StreamHeaderSize, StreamSegmentSize, tHdr, tSeg)
	}
}

// Streams sealed with the right key but a structure the writer never
// produces (which needs the key to make) are rejected by both readers.
func TestStreamNonCanonicalSegments(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	secret, nonce := bytes.Repeat([]byte{5}, 32), bytes.Repeat([]byte{6}, 12)
	full, short := testPlaintext(tSeg, 12), testPlaintext(100, 13)
	for name, segs := range map[string][][]byte{
		"empty last segment after a full one": {full, nil},
		"short middle segment":                {full, short, full},
		"short first segment":                 {short, full},
		"empty first segment":                 {nil, short},
		"oversized segment":                   {append(bytes.Clone(full), 1), short},
	} {
		ct := streamSealSegments(t, key1, "k1", secret, nonce, streamAAD, segs)
		want := bytes.Join(segs, nil)
		if got, err := decryptStream(k, ct, streamAAD); !errors.Is(err, ErrDecrypt) || !bytes.Equal(got, want[:len(got)]) {
			t.Errorf("%s: sequential: %d bytes, err = %v; want ErrDecrypt", name, len(got), err)
		}
		if got, err := readRange(k, &rangeSource{data: ct}, streamAAD, 0, -1); !errors.Is(err, ErrDecrypt) || !bytes.Equal(got, want[:len(got)]) {
			t.Errorf("%s: range: %d bytes, err = %v; want ErrDecrypt", name, len(got), err)
		}
	}
}

func TestStreamsDiffer(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	pt := testPlaintext(tSeg+10, 2)
	a, b := encryptStream(t, k, pt, streamAAD), encryptStream(t, k, pt, streamAAD)
	if bytes.Equal(a[38:tHdr], b[38:tHdr]) || bytes.Equal(a[tHdr:tHdr+32], b[tHdr:tHdr+32]) {
		t.Error("two encryptions of the same file share a wrapped secret or segment ciphertext")
	}
}

func TestStreamSizes(t *testing.T) {
	for _, c := range []struct{ pt, ct int64 }{
		{0, tHdr + 16},
		{1, tHdr + 17},
		{tSeg - 1, tHdr + tSeg + 15},
		{tSeg, tHdr + tSegCT},
		{tSeg + 1, tHdr + tSegCT + 17},
		{10 * tSeg, tHdr + 10*tSegCT},
		{5 << 30, tHdr + 5<<30 + (5<<30/tSeg)*16},
		{1 << 48, tHdr + 1<<48 + (1<<32)*16},
	} {
		if got, err := StreamCiphertextSize(c.pt); err != nil || got != c.ct {
			t.Errorf("StreamCiphertextSize(%d) = %d, %v; want %d", c.pt, got, err, c.ct)
		}
		if got, err := StreamPlaintextSize(c.ct); err != nil || got != c.pt {
			t.Errorf("StreamPlaintextSize(%d) = %d, %v; want %d", c.ct, got, err, c.pt)
		}
	}
	for _, pt := range []int64{-1, 1<<48 + 1} {
		if _, err := StreamCiphertextSize(pt); err == nil {
			t.Errorf("StreamCiphertextSize(%d) succeeded", pt)
		}
	}
	for _, ct := range []int64{
		-1, 0, tHdr, tHdr + 15, // no room for a segment
		tHdr + tSegCT + 1, tHdr + tSegCT + 15, // partial tag after a full segment
		tHdr + tSegCT + 16,         // empty segment after a full one
		tHdr + (1<<32)*tSegCT + 17, // too many segments
	} {
		if _, err := StreamPlaintextSize(ct); !errors.Is(err, ErrDecrypt) {
			t.Errorf("StreamPlaintextSize(%d): err = %v, want ErrDecrypt", ct, err)
		}
	}
}

func TestIsEncryptedStream(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	ct := encryptStream(t, k, nil, nil)
	if !IsEncryptedStream(ct) || !IsEncryptedStream(ct[:4]) {
		t.Error("IsEncryptedStream(ciphertext) = false")
	}
	for _, legacy := range []string{"", "\x89PS", "id,amount\n1,2\n", "\xef\xbb\xbfid,amount", "{\"a\":1}", "PSE\x89"} {
		if IsEncryptedStream([]byte(legacy)) {
			t.Errorf("IsEncryptedStream(%q) = true", legacy)
		}
	}
}

func TestStreamRandomAccess(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, tSeg - 1, tSeg, tSeg + 1, 4 * tSeg, 1<<20 + 123} {
		pt := testPlaintext(size, 3)
		ct := encryptStream(t, k, pt, streamAAD)
		P := int64(size)
		type rng2 struct{ off, n int64 }
		cases := []rng2{
			{0, -1}, {0, 0}, {P, 0}, {P, -1}, {P, 5}, {0, P}, {0, P + 100}, {P / 2, -1},
		}
		for _, b := range []int64{tSeg, 2 * tSeg, 3 * tSeg, 4 * tSeg} {
			if b <= P {
				cases = append(cases, rng2{b - 1, 2}, rng2{b - 1, 1}, rng2{b, 1}, rng2{b, tSeg}, rng2{b - tSeg, tSeg}, rng2{b - 5, tSeg + 10})
			}
		}
		if P > 0 {
			cases = append(cases, rng2{P - 1, 1}, rng2{P - 1, -1}, rng2{P - 1, 10})
		}
		for range 300 {
			off := rng.Int64N(P + 1)
			n := rng.Int64N(min(P-off, 3*tSeg) + 1)
			if rng.IntN(10) == 0 {
				n = -1
			}
			cases = append(cases, rng2{off, n})
		}
		for _, c := range cases {
			end := P
			if c.n >= 0 && c.off+c.n < P {
				end = c.off + c.n
			}
			src := &rangeSource{data: ct}
			got, err := readRange(k, src, streamAAD, c.off, c.n)
			if err != nil || !bytes.Equal(got, pt[c.off:end]) {
				t.Fatalf("size %d, range (%d, %d): %d bytes (want %d), %v", size, c.off, c.n, len(got), end-c.off, err)
			}
			if src.open != 0 {
				t.Errorf("size %d, range (%d, %d): %d ciphertext readers left open", size, c.off, c.n, src.open)
			}
			// Only the header and the segments holding the range are read,
			// in at most two requests.
			want := int64(tHdr)
			if end > c.off {
				first, last := c.off/tSeg, (end-1)/tSeg
				want += min(int64(len(ct))-tHdr, (last+1)*tSegCT) - first*tSegCT
			}
			var asked int64
			for _, call := range src.calls {
				asked += call[1]
			}
			if asked != want || len(src.calls) > 2 || src.calls[0][0] != 0 {
				t.Errorf("size %d, range (%d, %d): requests %v (%d bytes), want %d bytes in at most 2 requests starting with the header", size, c.off, c.n, src.calls, asked, want)
			}
		}
		src := &rangeSource{data: ct}
		for _, bad := range []int64{-1, P + 1} {
			if _, err := readRange(k, src, streamAAD, bad, 1); err == nil || errors.Is(err, ErrDecrypt) {
				t.Errorf("size %d: offset %d: err = %v, want a range error", size, bad, err)
			}
		}
	}
}

func TestStreamRangeStoreErrors(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	pt := testPlaintext(3*tSeg, 4)
	ct := encryptStream(t, k, pt, streamAAD)
	for _, c := range []struct {
		off    int64
		failAt int
	}{{0, 1}, {2 * tSeg, 1}, {2 * tSeg, 2}} {
		src := &rangeSource{data: ct, failAt: c.failAt}
		_, err := readRange(k, src, streamAAD, c.off, 10)
		if err == nil || errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), "store unavailable") {
			t.Errorf("off %d, open call %d failing: err = %v, want the store's error without ErrDecrypt", c.off, c.failAt, err)
		}
		if src.open != 0 {
			t.Errorf("off %d, open call %d failing: %d readers left open", c.off, c.failAt, src.open)
		}
	}
	// A store reporting a larger size than it serves.
	src := &rangeSource{data: ct[:len(ct)-100]}
	r, err := k.OpenDecryptRange(context.Background(), int64(len(ct)), func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return src.Open(ctx, off, min(n, int64(len(src.data))-off))
	}, streamAAD, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if !errors.Is(err, ErrDecrypt) || !bytes.Equal(got, pt[:len(got)]) || len(got)%tSeg != 0 {
		t.Errorf("short object: %d bytes, err = %v; want ErrDecrypt after whole genuine segments", len(got), err)
	}
}

// segStart is the ciphertext offset of segment i.
func segStart(i int) int { return tHdr + i*tSegCT }

func TestStreamTampering(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1)+","+keyEntry("k2", key2))
	pt := testPlaintext(3*tSeg+500, 5) // segments 0-2 full, segment 3 of 500 bytes
	ct := encryptStream(t, k, pt, streamAAD)
	other := encryptStream(t, k, pt, streamAAD) // same plaintext, another file
	seg := func(c []byte, i int) []byte { return c[segStart(i):min(segStart(i+1), len(c))] }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(at int) []byte {
		c := bytes.Clone(ct)
		c[at] ^= 0x40
		return c
	}

	cases := map[string][]byte{
		"segment 0 body":           flip(segStart(0) + 10),
		"segment 1 body":           flip(segStart(1) + tSeg/2),
		"last segment body":        flip(segStart(3)),
		"segment 0 tag":            flip(segStart(1) - 1),
		"last tag":                 flip(len(ct) - 1),
		"truncated after header":   ct[:tHdr],
		"truncated to 1 segment":   ct[:segStart(1)],
		"truncated to 2 segments":  ct[:segStart(2)],
		"last segment dropped":     ct[:segStart(3)],
		"truncated mid-segment":    ct[:segStart(1)+1000],
		"truncated in last tag":    ct[:len(ct)-1],
		"truncated 16 bytes":       ct[:len(ct)-16],
		"segments 0 and 1 swapped": cat(ct[:tHdr], seg(ct, 1), seg(ct, 0), seg(ct, 2), seg(ct, 3)),
		"segment 1 duplicated":     cat(ct[:tHdr], seg(ct, 0), seg(ct, 1), seg(ct, 1), seg(ct, 3)),
		"segment 1 repeated":       cat(ct[:segStart(2)], seg(ct, 1), ct[segStart(2):]),
		"segment 1 dropped":        cat(ct[:tHdr], seg(ct, 0), seg(ct, 2), seg(ct, 3)),
		"last moved to the middle": cat(ct[:tHdr], seg(ct, 0), seg(ct, 3), seg(ct, 1), seg(ct, 2)),
		"1 junk byte appended":     cat(ct, []byte{0}),
		"16 junk bytes appended":   cat(ct, make([]byte, 16)),
		"segment 0 appended":       cat(ct, seg(ct, 0)),
		"last segment appended":    cat(ct, seg(ct, 3)),
		"header of another file":   cat(other[:tHdr], ct[tHdr:]),
		"segment of another file":  cat(ct[:segStart(1)], seg(other, 1), ct[segStart(2):]),
		"empty":                    nil,
		"header only, short":       ct[:tHdr-1],
	}
	for i := range tHdr {
		cases[fmt.Sprintf("header byte %d", i)] = flip(i)
	}

	for name, bad := range cases {
		// Sequential: fails with ErrDecrypt, after returning only whole
		// genuine segments (a prefix of the plaintext).
		got, err := decryptStream(k, bad, streamAAD)
		if !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: sequential err = %v, want ErrDecrypt", name, err)
		}
		if len(got)%tSeg != 0 || !bytes.Equal(got, pt[:len(got)]) {
			t.Errorf("%s: sequential reader returned %d bytes that are not whole genuine segments", name, len(got))
		}
		// Random access to the whole file fails too (the size may already
		// be impossible).
		src := &rangeSource{data: bad}
		got, err = readRange(k, src, streamAAD, 0, -1)
		if !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: range (0, -1) err = %v, want ErrDecrypt", name, err)
		}
		if len(got)%tSeg != 0 || !bytes.Equal(got, pt[:len(got)]) {
			t.Errorf("%s: range reader returned %d bytes that are not whole genuine segments", name, len(got))
		}
		if src.open != 0 {
			t.Errorf("%s: %d readers left open", name, src.open)
		}
	}

	// Ranges touching a modified segment fail; others still read genuine bytes.
	bad := flip(segStart(1) + 7)
	src := &rangeSource{data: bad}
	for _, c := range []struct {
		off, n int64
		ok     bool
	}{{0, tSeg, true}, {2 * tSeg, -1, true}, {tSeg + 100, 1, false}, {tSeg - 1, 2, false}, {0, -1, false}} {
		end := int64(len(pt))
		if c.n >= 0 {
			end = c.off + c.n
		}
		got, err := readRange(k, src, streamAAD, c.off, c.n)
		if c.ok && (err != nil || !bytes.Equal(got, pt[c.off:end])) {
			t.Errorf("range (%d, %d) away from the damage: %v", c.off, c.n, err)
		}
		if !c.ok && !errors.Is(err, ErrDecrypt) {
			t.Errorf("range (%d, %d) over the damage: err = %v, want ErrDecrypt", c.off, c.n, err)
		}
	}
	// A stream truncated at a segment boundary has a plausible size, and
	// fails once its (new) last segment is read.
	short := &rangeSource{data: ct[:segStart(2)]}
	if _, err := readRange(k, short, streamAAD, tSeg+5, 5); !errors.Is(err, ErrDecrypt) {
		t.Errorf("range in the last segment of a truncated stream: err = %v, want ErrDecrypt", err)
	}
}

func TestStreamWrongAAD(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	pt := testPlaintext(tSeg+1, 6)
	ct := encryptStream(t, k, pt, streamAAD)
	for _, aad := range [][]byte{nil, []byte("staging/upload-43.csv"), []byte("staging/upload-42.csv\x00"), streamAAD[:len(streamAAD)-1]} {
		if _, err := k.NewDecryptReader(bytes.NewReader(ct), aad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("aad %q: NewDecryptReader err = %v, want ErrDecrypt", aad, err)
		}
		src := &rangeSource{data: ct}
		if _, err := k.OpenDecryptRange(context.Background(), int64(len(ct)), src.Open, aad, tSeg, 1); !errors.Is(err, ErrDecrypt) {
			t.Errorf("aad %q: OpenDecryptRange err = %v, want ErrDecrypt", aad, err)
		}
	}
	// nil and empty aad are the same.
	ct = encryptStream(t, k, pt, nil)
	if got, err := decryptStream(k, ct, []byte{}); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("empty aad after nil aad: %v", err)
	}
}

func TestStreamUnknownKey(t *testing.T) {
	writer := mustRing(t, keyEntry("k9", key1))
	reader := mustRing(t, keyEntry("k1", key1)) // same key bytes, other id
	ct := encryptStream(t, writer, []byte("secret rows"), streamAAD)
	_, err := decryptStream(reader, ct, streamAAD)
	if !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrDecrypt) {
		t.Errorf("NewDecryptReader with the key missing: err = %v, want ErrUnknownKey and ErrDecrypt", err)
	}
	src := &rangeSource{data: ct}
	if _, err := readRange(reader, src, streamAAD, 0, -1); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("OpenDecryptRange with the key missing: err = %v, want ErrUnknownKey", err)
	}
	// Same id, different key: a plain authentication failure.
	impostor := mustRing(t, keyEntry("k9", key2))
	if _, err := decryptStream(impostor, ct, streamAAD); !errors.Is(err, ErrDecrypt) || errors.Is(err, ErrUnknownKey) {
		t.Errorf("same id, other key: err = %v, want ErrDecrypt only", err)
	}
	// A keyring without keys reports that rather than a decryption failure.
	for name, k := range map[string]*Keyring{"nil": nil, "zero": {}} {
		if _, err := k.NewEncryptWriter(io.Discard, nil); err == nil {
			t.Errorf("%s keyring: NewEncryptWriter succeeded", name)
		}
		if _, err := decryptStream(k, ct, streamAAD); err == nil {
			t.Errorf("%s keyring: NewDecryptReader succeeded", name)
		}
	}
}

func TestStreamKeyRotation(t *testing.T) {
	a := mustRing(t, keyEntry("k1", key1))
	b := mustRing(t, keyEntry("k2", key2)+","+keyEntry("k1", key1))
	oldPT, newPT := testPlaintext(2*tSeg+9, 7), testPlaintext(tSeg+3, 8)
	old := encryptStream(t, a, oldPT, streamAAD)
	fresh := encryptStream(t, b, newPT, streamAAD)
	if id := string(fresh[6 : 6+fresh[5]]); id != "k2" {
		t.Errorf("new file written under key %q, want the primary k2", id)
	}
	if got, err := decryptStream(b, old, streamAAD); err != nil || !bytes.Equal(got, oldPT) {
		t.Errorf("new ring reading a file of the old key: %v", err)
	}
	if got, err := readRange(b, &rangeSource{data: old}, streamAAD, tSeg-3, 10); err != nil || !bytes.Equal(got, oldPT[tSeg-3:tSeg+7]) {
		t.Errorf("new ring reading a range of a file of the old key: %v", err)
	}
	if got, err := decryptStream(b, fresh, streamAAD); err != nil || !bytes.Equal(got, newPT) {
		t.Errorf("new ring reading a new file: %v", err)
	}
	if _, err := decryptStream(a, fresh, streamAAD); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old ring reading a new file: err = %v, want ErrUnknownKey", err)
	}
}

// A field ciphertext and a stream header, both sealed under the same
// keyring key, cannot stand in for each other.
func TestStreamDomainSeparation(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	ct := encryptStream(t, k, []byte("x"), streamAAD)
	// The stream header's sealed secret, presented as a field value with
	// every AAD a caller could reconstruct.
	sealed := ct[38:tHdr]
	for _, aad := range [][]byte{streamAAD, append(bytes.Clone(ct[:38]), streamAAD...)} {
		if _, err := k.Open("k1", sealed, aad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("stream secret opened as a field value: err = %v", err)
		}
	}
	// A field ciphertext of 32 bytes spliced into a stream header.
	field, err := k.Encrypt(bytes.Repeat([]byte{1}, 32), append(bytes.Clone(ct[:38]), streamAAD...))
	if err != nil {
		t.Fatal(err)
	}
	forged := append(bytes.Clone(ct[:38]), field[len(field)-60:]...)
	forged = append(forged, ct[tHdr:]...)
	if _, err := decryptStream(k, forged, streamAAD); !errors.Is(err, ErrDecrypt) {
		t.Errorf("field ciphertext accepted as a stream header: err = %v", err)
	}
}

type failingWriter struct {
	n     int // bytes accepted before failing
	short bool
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return len(p), nil
	}
	n := f.n
	f.n = 0
	if f.short {
		return n, nil
	}
	return n, errors.New("disk full")
}

func TestStreamWriterErrors(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	big := testPlaintext(3*tSeg, 10)
	for _, fw := range []*failingWriter{{n: 0}, {n: 50}, {n: tHdr + tSeg}, {n: tHdr + 2*tSegCT + 3}, {n: tHdr, short: true}} {
		w, err := k.NewEncryptWriter(fw, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, werr := w.Write(big)
		cerr := w.Close()
		if werr == nil && cerr == nil {
			t.Errorf("writer failing after %d bytes: no error from Write or Close", fw.n)
		}
		if werr != nil {
			if _, err := w.Write([]byte("x")); err == nil {
				t.Error("Write after a failed Write succeeded")
			}
		}
		if err := w.Close(); err == nil {
			t.Error("second Close after a failure returned nil")
		}
	}

	var out bytes.Buffer
	w, err := k.NewEncryptWriter(&out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Error("NewEncryptWriter wrote before the first Write or Close")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if n, err := w.Write([]byte("x")); err == nil || n != 0 {
		t.Errorf("Write after Close = %d, %v; want an error", n, err)
	}
	if got, err := decryptStream(k, out.Bytes(), nil); err != nil || len(got) != 0 {
		t.Errorf("empty stream: %q, %v", got, err)
	}
	if n, err := w.Write(nil); err == nil || n != 0 {
		t.Errorf("empty Write after Close = %d, %v; want an error", n, err)
	}
}

func TestStreamErrorsDoNotLeak(t *testing.T) {
	key := testKey(200)
	k := mustRing(t, keyEntry("k1", key))
	pt := []byte("4111111111111111 alice@example.com ")
	pt = bytes.Repeat(pt, tSeg/len(pt)+2)
	ct := encryptStream(t, k, pt, streamAAD)
	var errs []error
	for _, bad := range [][]byte{ct[:len(ct)-1], append(bytes.Clone(ct), 1), ct[:tHdr+5]} {
		_, err := decryptStream(k, bad, streamAAD)
		errs = append(errs, err)
		_, err = readRange(k, &rangeSource{data: bad}, streamAAD, 0, -1)
		errs = append(errs, err)
	}
	_, err := decryptStream(k, ct, []byte("other"))
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("tampered stream decrypted")
		}
		msg := err.Error()
		for _, leak := range []string{"4111", "alice", base64.StdEncoding.EncodeToString(key)[:8], "\xc8\xc9", "staging/upload"} {
			if strings.Contains(msg, leak) {
				t.Errorf("error %q repeats sensitive data %q", msg, leak)
			}
		}
	}
}

// Run with -race to check that one Keyring serves many streams at once.
func TestStreamConcurrentUse(t *testing.T) {
	k := mustRing(t, keyEntry("k2", key2)+","+keyEntry("k1", key1))
	old := mustRing(t, keyEntry("k1", key1))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Go(func() {
			for i := range 10 {
				pt := testPlaintext(g*10000+i*tSeg/3, uint64(g*100+i))
				aad := fmt.Appendf(nil, "export/%d/%d", g, i)
				ring := k
				if i%2 == 1 {
					ring = old
				}
				var buf bytes.Buffer
				w, err := ring.NewEncryptWriter(&buf, aad)
				if err == nil {
					_, err = w.Write(pt)
				}
				if err == nil {
					err = w.Close()
				}
				if err != nil {
					errs <- err
					return
				}
				ct := buf.Bytes()
				if got, err := decryptStream(k, ct, aad); err != nil || !bytes.Equal(got, pt) {
					errs <- fmt.Errorf("goroutine %d file %d: round trip: %v", g, i, err)
					return
				}
				off := int64(len(pt) / 3)
				if got, err := readRange(k, &rangeSource{data: ct}, aad, off, tSeg); err != nil || !bytes.Equal(got, pt[off:min(off+tSeg, int64(len(pt)))]) {
					errs <- fmt.Errorf("goroutine %d file %d: range: %v", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Allocations per stream do not grow with its size: segment buffers are
// reused.
func TestStreamAllocationsConstant(t *testing.T) {
	k := mustRing(t, keyEntry("k1", key1))
	chunk := make([]byte, 32<<10)
	readBuf := make([]byte, 32<<10)
	var sink bytes.Buffer
	count := func(size int) (enc, dec, rng float64) {
		pt := testPlaintext(size, 11)
		ct := encryptStream(t, k, pt, streamAAD)
		enc = testing.AllocsPerRun(5, func() {
			w, _ := k.NewEncryptWriter(io.Discard, streamAAD)
			for off := 0; off < size; off += len(chunk) {
				w.Write(chunk[:min(len(chunk), size-off)])
			}
			w.Close()
		})
		dec = testing.AllocsPerRun(5, func() {
			r, _ := k.NewDecryptReader(bytes.NewReader(ct), streamAAD)
			for {
				if _, err := r.Read(readBuf); err != nil {
					break
				}
			}
		})
		src := &rangeSource{data: ct}
		rng = testing.AllocsPerRun(5, func() {
			src.calls = src.calls[:0]
			r, _ := k.OpenDecryptRange(context.Background(), int64(len(ct)), src.Open, streamAAD, 10, int64(size-20))
			sink.Reset()
			for {
				if _, err := r.Read(readBuf); err != nil {
					break
				}
			}
			r.Close()
		})
		return
	}
	e1, d1, r1 := count(1 << 20)
	e2, d2, r2 := count(8 << 20)
	t.Logf("allocations per stream: encrypt %v, decrypt %v, range %v", e1, d1, r1)
	if e2 > e1 || d2 > d1 || r2 > r1 {
		t.Errorf("allocations grow with size: 1 MiB: %v/%v/%v, 8 MiB: %v/%v/%v", e1, d1, r1, e2, d2, r2)
	}
}

func benchmarkStreamSize() int { return 64 << 20 }

func BenchmarkStreamEncrypt(b *testing.B) {
	k := mustRing(b, keyEntry("k1", key1))
	chunk := make([]byte, 32<<10)
	size := benchmarkStreamSize()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		w, err := k.NewEncryptWriter(io.Discard, streamAAD)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < size; off += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStreamDecrypt(b *testing.B) {
	k := mustRing(b, keyEntry("k1", key1))
	size := benchmarkStreamSize()
	ct := encryptStream(b, k, make([]byte, size), streamAAD)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		r, err := k.NewDecryptReader(bytes.NewReader(ct), streamAAD)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != int64(size) {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkStreamDecryptRange reads 1 MiB import chunks at random offsets.
func BenchmarkStreamDecryptRange(b *testing.B) {
	k := mustRing(b, keyEntry("k1", key1))
	size := benchmarkStreamSize()
	ct := encryptStream(b, k, make([]byte, size), streamAAD)
	src := &rangeSource{data: ct}
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 1 << 20
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		src.calls = src.calls[:0]
		r, err := k.OpenDecryptRange(context.Background(), int64(len(ct)), src.Open, streamAAD, rng.Int64N(int64(size-n)), n)
		if err != nil {
			b.Fatal(err)
		}
		if got, err := io.Copy(io.Discard, r); err != nil || got != n {
			b.Fatal(got, err)
		}
		r.Close()
	}
}

// FuzzDecryptStream feeds arbitrary bytes to both decrypting readers: they
// must never panic, never accept anything but a genuine stream, and never
// return a byte that is not genuine plaintext at its offset. A genuine stream
// with one byte changed must fail, and the input as plaintext must round-trip.
func FuzzDecryptStream(f *testing.F) {
	k := mustRing(f, keyEntry("k1", key1)+","+keyEntry("k2", key2))
	aad := streamAAD
	type genuine struct{ ct, pt []byte }
	var gs []genuine
	// Fixed randomness: every fuzzing worker must build the same streams.
	for i, c := range []struct {
		id  string
		key []byte
		pt  []byte
	}{
		{"k1", key1, nil},
		{"k2", key2, []byte("id,amount\n1,100\n")},
		{"k1", key1, testPlaintext(tSeg+100, 14)},
	} {
		ct := streamSealFixed(f, c.key, c.id, bytes.Repeat([]byte{byte(i + 1)}, 32), bytes.Repeat([]byte{byte(i + 10)}, 12), c.pt, aad)
		gs = append(gs, genuine{ct, c.pt})
	}
	byHeader := func(data []byte) *genuine {
		for i := range gs {
			if len(data) >= tHdr && bytes.Equal(data[:tHdr], gs[i].ct[:tHdr]) {
				return &gs[i]
			}
		}
		return nil
	}
	// isGenuineAt reports whether got is the plaintext of g at offset off.
	isGenuineAt := func(g *genuine, got []byte, off int64) bool {
		if len(got) == 0 {
			return true
		}
		return g != nil && off+int64(len(got)) <= int64(len(g.pt)) && bytes.Equal(got, g.pt[off:off+int64(len(got))])
	}

	two := gs[2].ct
	for i, g := range gs {
		f.Add(g.ct, uint(i*7), byte(1), uint64(i), int64(-1))
	}
	f.Add(two[:segStart(1)], uint(tHdr), byte(0x80), uint64(tSeg-1), int64(2))
	f.Add(append(bytes.Clone(two), 0), uint(segStart(1)), byte(2), uint64(tSeg), int64(-1))
	f.Add(bytes.Join([][]byte{two[:segStart(1)], two[tHdr:segStart(1)], two[segStart(1):]}, nil), uint(5), byte(3), uint64(2*tSeg), int64(10))
	f.Add(bytes.Join([][]byte{two[:tHdr], two[segStart(1):], two[tHdr:segStart(1)]}, nil), uint(len(two)-1), byte(4), uint64(0), int64(0))
	f.Add(append(bytes.Clone(gs[0].ct[:tHdr]), gs[1].ct[tHdr:]...), uint(40), byte(5), uint64(1), int64(1))
	f.Add([]byte{}, uint(0), byte(0), uint64(0), int64(0))
	f.Add([]byte("\x89PSE\x01\x02k1"), uint(3), byte(0xff), uint64(0), int64(-1))
	f.Add([]byte("id,amount\n1,100\n"), uint(60), byte(0x10), uint64(3), int64(4))

	f.Fuzz(func(t *testing.T, data []byte, pos uint, delta byte, off uint64, n int64) {
		g := byHeader(data)

		// Sequential reading.
		got, err := decryptStream(k, data, aad)
		if err == nil {
			if g == nil || !bytes.Equal(data, g.ct) || !bytes.Equal(got, g.pt) {
				t.Fatalf("sequential reader accepted a forged stream (%d bytes) -> %d bytes", len(data), len(got))
			}
		} else {
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("sequential error %v does not wrap ErrDecrypt", err)
			}
			if len(got)%tSeg != 0 || !isGenuineAt(g, got, 0) {
				t.Fatalf("sequential reader returned %d bytes that are not genuine plaintext before failing with %v", len(got), err)
			}
		}

		// Random access.
		if size, err := StreamPlaintextSize(int64(len(data))); err == nil {
			o := int64(off % uint64(size+1))
			end := size
			if n >= 0 && n < size-o {
				end = o + n
			}
			src := &rangeSource{data: data}
			got, err := readRange(k, src, aad, o, n)
			if err != nil && !errors.Is(err, ErrDecrypt) {
				t.Fatalf("range error %v does not wrap ErrDecrypt", err)
			}
			if (err == nil && g == nil) || !isGenuineAt(g, got, o) {
				t.Fatalf("range (%d, %d) of a %d-byte stream returned %d bytes that are not genuine plaintext (err %v)", o, n, len(data), len(got), err)
			}
			if err == nil && int64(len(got)) != end-o {
				t.Fatalf("range (%d, %d): %d bytes, want %d", o, n, len(got), end-o)
			}
			if err == nil && end > o && end == size && size != int64(len(g.pt)) {
				t.Fatalf("range (%d, %d) read the end of a %d-byte stream of a %d-byte file", o, n, size, len(g.pt))
			}
			if src.open != 0 {
				t.Fatalf("range reader left %d readers open", src.open)
			}
		}

		// A genuine stream with one byte changed fails.
		if delta == 0 {
			delta = 1
		}
		for _, g := range gs {
			bad := bytes.Clone(g.ct)
			p := int(pos % uint(len(bad)))
			bad[p] ^= delta
			got, err := decryptStream(k, bad, aad)
			if !errors.Is(err, ErrDecrypt) || len(got)%tSeg != 0 || !bytes.Equal(got, g.pt[:len(got)]) {
				t.Fatalf("byte %d changed by ^%#02x: %d bytes, err = %v; want ErrDecrypt after genuine segments only", p, delta, len(got), err)
			}
			if p >= tHdr {
				seg := int64((p - tHdr) / tSegCT)
				if seg*tSeg < int64(len(g.pt)) {
					if _, err := readRange(k, &rangeSource{data: bad}, aad, seg*tSeg, 1); !errors.Is(err, ErrDecrypt) {
						t.Fatalf("byte %d changed: range read of segment %d: err = %v, want ErrDecrypt", p, seg, err)
					}
				}
			} else if _, err := readRange(k, &rangeSource{data: bad}, aad, 0, 0); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("header byte %d changed: empty range read: err = %v, want ErrDecrypt", p, err)
			}
		}

		// The input as plaintext round-trips, whole and by range.
		ct := encryptStream(t, k, data, aad, int(pos%(2*tSeg))+1)
		if got, err := decryptStream(k, ct, aad); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes: %d bytes, %v", len(data), len(got), err)
		}
		o := int64(off % uint64(len(data)+1))
		end := int64(len(data))
		if n >= 0 && n < end-o {
			end = o + n
		}
		if got, err := readRange(k, &rangeSource{data: ct}, aad, o, n); err != nil || !bytes.Equal(got, data[o:end]) {
			t.Fatalf("range (%d, %d) of %d bytes: %d bytes, %v", o, n, len(data), len(got), err)
		}
	})
}
