package staging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/payments/internal/encryption"
)

const seg = encryption.StreamSegmentSize

// Fixed test keys (32 bytes each, standard base64).
var (
	keyA = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5}, 32))
	keyB = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
)

// marker is a plaintext pattern that must never show on disk or in errors.
const marker = "alice@example.com,4111111111111111"

func keyring(t testing.TB, spec string) *encryption.Keyring {
	t.Helper()
	k, err := encryption.ParseKeys(spec)
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	return k
}

// fileURL is a file:// URL for dir as internal/config builds it.
func fileURL(dir string) string {
	return "file://" + filepath.ToSlash(dir) + "?create_dir=true&metadata=skip"
}

// openStore opens a store over dir with the key spec.
func openStore(t testing.TB, dir, spec string) *Store {
	t.Helper()
	s, err := Open(context.Background(), fileURL(dir), keyring(t, spec))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	return openStore(t, dir, "A:"+keyA), dir
}

// content returns n pseudo-random bytes with the marker sprinkled in where
// it fits.
func content(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for off := 0; off+len(marker) <= n; off += 50_000 {
		copy(b[off:], marker)
	}
	return b
}

// rd(t)(s.Open(…)) reads what an open returned, failing t on an error.
func rd(t testing.TB) func(io.ReadCloser, error) []byte {
	return func(r io.ReadCloser, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return b
	}
}

// rawPath is where a local store keeps key.
func rawPath(root, key string) string { return filepath.Join(root, filepath.FromSlash(key)) }

// files lists the regular files under root, relative, slash-separated.
func files(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPutOpenRoundTrip(t *testing.T) {
	s, root := newStore(t)
	ctx := context.Background()
	for i, n := range []int{0, 1, seg - 1, seg, seg + 1, 3<<20 + 12345} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := content(n, uint64(i))
			obj, err := s.Put(ctx, "uploads/", bytes.NewReader(pt), 10<<20)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			sum := sha256.Sum256(pt)
			if obj.SHA256 != hex.EncodeToString(sum[:]) || obj.Size != int64(n) || !strings.HasPrefix(obj.Key, "uploads/") {
				t.Fatalf("Put = %+v, want plaintext size %d and sha %x", obj, n, sum)
			}
			if got := rd(t)(s.Open(ctx, obj.Key)); !bytes.Equal(got, pt) {
				t.Fatalf("Open: got %d bytes, want the %d written", len(got), n)
			}
			if got := rd(t)(s.OpenRange(ctx, obj.Key, 0, -1)); !bytes.Equal(got, pt) {
				t.Fatalf("OpenRange(0, -1) differs")
			}
			if size, err := s.Size(ctx, obj.Key); err != nil || size != int64(n) {
				t.Fatalf("Size = %d, %v; want %d", size, err, n)
			}
			raw, err := os.ReadFile(rawPath(root, obj.Key))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := encryption.StreamCiphertextSize(int64(n))
			if int64(len(raw)) != want || !encryption.IsEncryptedStream(raw) {
				t.Fatalf("raw object: %d bytes, encrypted %v; want an encrypted stream of %d", len(raw), encryption.IsEncryptedStream(raw), want)
			}
			if n >= 16 && bytes.Contains(raw, pt[:min(n, 64)]) {
				t.Fatal("raw object holds plaintext")
			}
			if n >= len(marker) && bytes.Contains(raw, []byte(marker)) {
				t.Fatal("raw object holds the plaintext marker")
			}
		})
	}
}

func TestOpenRange(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	n := 5*seg + 1234
	pt := content(n, 7)
	obj, err := s.Put(ctx, "uploads/", bytes.NewReader(pt), int64(n))
	if err != nil {
		t.Fatal(err)
	}
	check := func(off, length int64) {
		t.Helper()
		end := int64(n)
		if length >= 0 && off+length < end {
			end = off + length
		}
		got := rd(t)(s.OpenRange(ctx, obj.Key, off, length))
		if !bytes.Equal(got, pt[off:end]) {
			t.Fatalf("OpenRange(%d, %d): got %d bytes, want %d", off, length, len(got), end-off)
		}
	}
	fixed := [][2]int64{
		{0, 0}, {0, 1}, {0, seg}, {0, seg + 1}, {seg - 1, 2}, {seg - 10, 20}, {seg, seg}, {seg, -1},
		{2*seg - 1, seg + 2}, {3 * seg, 1}, {1, 5 * seg}, {int64(n) - 1, 1}, {int64(n) - 1, 100},
		{int64(n), 0}, {int64(n), -1}, {int64(n), 10}, {0, int64(n) + 100}, {5 * seg, -1}, {5*seg - 1, 2},
	}
	for _, r := range fixed {
		check(r[0], r[1])
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		off := rng.Int64N(int64(n) + 1)
		length := rng.Int64N(3*seg) - seg/4 // some negative: to the end
		if length < 0 {
			length = -1
		}
		check(off, length)
	}
	if _, err := s.OpenRange(ctx, obj.Key, int64(n)+1, 1); err == nil {
		t.Fatal("OpenRange past the end: no error")
	}
	if _, err := s.OpenRange(ctx, obj.Key, -1, 1); err == nil {
		t.Fatal("OpenRange at a negative offset: no error")
	}
}

// A range reads only its segments: damage elsewhere does not affect it.
func TestOpenRangeReadsOnlyItsSegments(t *testing.T) {
	s, root := newStore(t)
	ctx := context.Background()
	n := 4*seg + 10
	pt := content(n, 8)
	obj, err := s.Put(ctx, "uploads/", bytes.NewReader(pt), int64(n))
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, rawPath(root, obj.Key), encryption.StreamHeaderSize+int64(seg+16)+100) // segment 1
	if got := rd(t)(s.OpenRange(ctx, obj.Key, 2*seg+5, seg)); !bytes.Equal(got, pt[2*seg+5:3*seg+5]) {
		t.Fatal("range in segments 2-3 differs")
	}
	if got := rd(t)(s.OpenRange(ctx, obj.Key, 10, 100)); !bytes.Equal(got, pt[10:110]) {
		t.Fatal("range in segment 0 differs")
	}
	r, err := s.OpenRange(ctx, obj.Key, seg-1, 2)
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("range over the damaged segment: %v, want ErrDecrypt", err)
	}
}

func TestNotFound(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Open(ctx, "uploads/nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open: %v", err)
	}
	if _, err := s.OpenRange(ctx, "uploads/nope", 5, 5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenRange: %v", err)
	}
	if _, err := s.Size(ctx, "uploads/nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Size: %v", err)
	}
	if err := s.Delete(ctx, "uploads/nope"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}

func TestPutTooLarge(t *testing.T) {
	s, root := newStore(t)
	ctx := context.Background()
	for _, n := range []int{101, 3*seg + 7} {
		_, err := s.Put(ctx, "uploads/", bytes.NewReader(content(n, 1)), 100)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Put of %d bytes over 100: %v, want ErrTooLarge", n, err)
		}
	}
	if f := files(t, root); len(f) != 0 {
		t.Fatalf("files left behind: %v", f)
	}
	if keys, err := s.List(ctx, ""); err != nil || len(keys) != 0 {
		t.Fatalf("List = %v, %v", keys, err)
	}
	if obj, err := s.Put(ctx, "uploads/", bytes.NewReader(content(100, 1)), 100); err != nil || obj.Size != 100 {
		t.Fatalf("Put at the limit: %+v, %v", obj, err)
	}
}

// A failing source stores nothing and its error comes back.
func TestPutReadError(t *testing.T) {
	s, root := newStore(t)
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(content(2*seg, 3)), &errReader{boom})
	if _, err := s.Put(context.Background(), "uploads/", r, 1<<20); !errors.Is(err, boom) {
		t.Fatalf("Put: %v, want boom", err)
	}
	if f := files(t, root); len(f) != 0 {
		t.Fatalf("files left behind: %v", f)
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

func TestCreateCloseAbortList(t *testing.T) {
	s, root := newStore(t)
	ctx := context.Background()
	write := func(key string, pt []byte) *Writer {
		t.Helper()
		w, err := s.Create(ctx, key)
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		for rest := pt; len(rest) > 0; {
			k := min(len(rest), 10_000)
			if n, err := w.Write(rest[:k]); err != nil || n != k {
				t.Fatalf("Write: %d, %v", n, err)
			}
			rest = rest[k:]
		}
		return w
	}

	a := content(3*seg+5, 11)
	w := write("exports/a.csv", a)
	if keys, _ := s.List(ctx, "exports/"); len(keys) != 0 {
		t.Fatalf("listed before Close: %v", keys)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	w.Abort() // no-op after Close
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close: no error")
	}
	if got := rd(t)(s.Open(ctx, "exports/a.csv")); !bytes.Equal(got, a) {
		t.Fatal("exports/a.csv differs")
	}

	// Abort: nothing of the write stays, on a new key or over an old one.
	w = write("exports/b.csv", content(2*seg, 12))
	w.Abort()
	if err := w.Close(); err == nil {
		t.Fatal("Close after Abort: no error")
	}
	w = write("exports/a.csv", content(2*seg, 13))
	w.Abort()
	if got := rd(t)(s.Open(ctx, "exports/a.csv")); !bytes.Equal(got, a) {
		t.Fatal("an aborted rewrite changed exports/a.csv")
	}
	// A cancelled context aborts too.
	cctx, cancel := context.WithCancel(ctx)
	cw, err := s.Create(cctx, "exports/c.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.Write(content(seg+1, 14)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := cw.Close(); err == nil {
		t.Fatal("Close with a cancelled context: no error")
	}
	if f := files(t, root); !slices.Equal(f, []string{"exports/a.csv"}) {
		t.Fatalf("files = %v, want only exports/a.csv", f)
	}

	// An empty object.
	if err := write("exports/empty.csv", nil).Close(); err != nil {
		t.Fatal(err)
	}
	if got := rd(t)(s.Open(ctx, "exports/empty.csv")); len(got) != 0 {
		t.Fatal("empty object not empty")
	}

	// List by prefix; a write in progress (a temporary file in the store)
	// is not listed.
	up, err := s.Put(ctx, "uploads/", bytes.NewReader([]byte("x")), 10)
	if err != nil {
		t.Fatal(err)
	}
	open := write("exports/d.csv", content(2*seg+1, 15))
	defer open.Abort()
	if f := files(t, root); !slices.ContainsFunc(f, func(p string) bool { return strings.HasSuffix(p, ".tmp") }) {
		t.Fatalf("no temporary file in the store while writing: %v", f)
	}
	for prefix, want := range map[string][]string{
		"exports/":  {"exports/a.csv", "exports/empty.csv"},
		"uploads/":  {up.Key},
		"":          {"exports/a.csv", "exports/empty.csv", up.Key},
		"exports/e": {"exports/empty.csv"},
		"nothing/":  nil,
	} {
		got, err := s.List(ctx, prefix)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("List(%q) = %v, %v; want %v", prefix, got, err, want)
		}
	}

	for _, key := range []string{"", "exports/x.tmp"} {
		if _, err := s.Create(ctx, key); err == nil {
			t.Fatalf("Create(%q): no error", key)
		}
	}
}

func TestCopiedOrTamperedFailsToDecrypt(t *testing.T) {
	s, root := newStore(t)
	ctx := context.Background()
	pt := content(2*seg+100, 21)
	obj, err := s.Put(ctx, "uploads/", bytes.NewReader(pt), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(rawPath(root, obj.Key))
	if err != nil {
		t.Fatal(err)
	}
	noLeak := func(err error) {
		t.Helper()
		if strings.Contains(err.Error(), marker) || strings.Contains(err.Error(), string(pt[:16])) {
			t.Fatalf("error repeats content: %v", err)
		}
	}

	// Copied on disk to another key: the aad binds the key.
	if err := os.WriteFile(rawPath(root, "uploads/copy"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "uploads/copy"); !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("Open of a copy: %v, want ErrDecrypt", err)
	} else {
		noLeak(err)
	}
	if _, err := s.OpenRange(ctx, "uploads/copy", seg+3, 10); !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("OpenRange of a copy: %v, want ErrDecrypt", err)
	}

	// One byte changed, in the header or in a segment.
	for _, off := range []int64{50, encryption.StreamHeaderSize + 5, int64(len(raw)) - 1} {
		key := fmt.Sprintf("uploads/tampered-%d", off)
		w, err := s.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(pt); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		rd(t)(s.Open(ctx, key)) // intact: fine
		flipByte(t, rawPath(root, key), off)
		r, err := s.Open(ctx, key)
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		if !errors.Is(err, encryption.ErrDecrypt) {
			t.Fatalf("Open with byte %d changed: %v, want ErrDecrypt", off, err)
		}
		noLeak(err)
		if !strings.Contains(err.Error(), key) {
			t.Fatalf("error does not name the key: %v", err)
		}
		r, err = s.OpenRange(ctx, key, 0, int64(len(pt)))
		if err == nil {
			_, err = io.ReadAll(r)
			r.Close()
		}
		if !errors.Is(err, encryption.ErrDecrypt) {
			t.Fatalf("OpenRange with byte %d changed: %v, want ErrDecrypt", off, err)
		}
	}

	// Truncated at a segment boundary.
	key := "uploads/truncated"
	w, _ := s.Create(ctx, key)
	w.Write(pt)
	w.Close()
	if err := os.Truncate(rawPath(root, key), encryption.StreamHeaderSize+2*int64(seg+16)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, key)
	if err == nil {
		_, err = io.ReadAll(r)
		r.Close()
	}
	if !errors.Is(err, encryption.ErrDecrypt) {
		t.Fatalf("Open of a truncated object: %v, want ErrDecrypt", err)
	}
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestLegacyPlaintext(t *testing.T) {
	s, root := newStore(t)
	ctx := context.Background()
	var csv bytes.Buffer
	csv.WriteString("order_id,order_amount,currency,customer_email\n")
	for i := 0; csv.Len() < 3*seg+500; i++ {
		fmt.Fprintf(&csv, "ord-%d,%d.%02d,USD,%s\n", i, i, i%100, marker)
	}
	pt := csv.Bytes()
	cases := map[string][]byte{
		"uploads/legacycsv":   pt,
		"uploads/legacyempty": nil,
		"uploads/legacy2":     []byte("ab"),
		"uploads/legacybom":   append([]byte("\xef\xbb\xbf"), pt[:1000]...),
	}
	if err := os.MkdirAll(filepath.Join(root, "uploads"), 0o700); err != nil {
		t.Fatal(err)
	}
	for key, b := range cases {
		if err := os.WriteFile(rawPath(root, key), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for key, want := range cases {
		if got := rd(t)(s.Open(ctx, key)); !bytes.Equal(got, want) {
			t.Fatalf("Open(%s): got %d bytes, want %d", key, len(got), len(want))
		}
		if size, err := s.Size(ctx, key); err != nil || size != int64(len(want)) {
			t.Fatalf("Size(%s) = %d, %v; want %d", key, size, err, len(want))
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		off := rng.Int64N(int64(len(pt)))
		length := rng.Int64N(2 * seg)
		end := min(off+length, int64(len(pt)))
		if got := rd(t)(s.OpenRange(ctx, "uploads/legacycsv", off, length)); !bytes.Equal(got, pt[off:end]) {
			t.Fatalf("OpenRange(%d, %d) of the legacy object differs", off, length)
		}
	}
	if got := rd(t)(s.OpenRange(ctx, "uploads/legacycsv", 100, -1)); !bytes.Equal(got, pt[100:]) {
		t.Fatal("OpenRange(100, -1) of the legacy object differs")
	}
	if got := rd(t)(s.OpenRange(ctx, "uploads/legacy2", 1, 5)); string(got) != "b" {
		t.Fatalf("OpenRange of a 2-byte legacy object = %q", got)
	}
}

func TestModes(t *testing.T) {
	// Modes must not depend on the umask: the most permissive one.
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	base := t.TempDir()
	// What an older version left: a 0755 store with a 0755 directory and a
	// 0644 file.
	root := filepath.Join(base, "blobs")
	if err := os.MkdirAll(filepath.Join(root, "uploads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "uploads", "legacy"), []byte("a,b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, root, "A:"+keyA)
	// A store created from nothing, nested.
	fresh := filepath.Join(base, "new", "nested", "blobs")
	s2 := openStore(t, fresh, "A:"+keyA)

	ctx := context.Background()
	for _, st := range []*Store{s, s2} {
		if _, err := st.Put(ctx, "uploads/", bytes.NewReader(content(seg+1, 1)), 1<<20); err != nil {
			t.Fatal(err)
		}
		w, err := st.Create(ctx, "exports/2024/01/x.csv")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(content(2*seg+1, 2))
		// The temporary file is private while it is written.
		tmp := files(t, st.root)
		for _, p := range tmp {
			if fi, _ := os.Stat(filepath.Join(st.root, p)); fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: mode %o while writing", p, fi.Mode().Perm())
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{root, filepath.Join(base, "new")} {
		n := 0
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %o, want %o", p, fi.Mode().Perm(), want)
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n < 5 {
			t.Fatalf("walked only %d entries under %s", n, dir)
		}
	}
}

func TestOpenOptions(t *testing.T) {
	ctx := context.Background()
	keys := keyring(t, "A:"+keyA)
	dir := t.TempDir()
	for _, bad := range []string{
		"file://" + dir + "?dir_file_mode=0755",
		"file://" + dir + "?metadata=",
	} {
		if _, err := Open(ctx, bad, keys); err == nil {
			t.Fatalf("Open(%s): no error", bad)
		}
	}
	if _, err := Open(ctx, fileURL(dir), nil); err == nil {
		t.Fatal("Open without keys: no error")
	}
	// No parameters at all, 0700 given explicitly: fine, and no sidecars.
	for _, u := range []string{"file://" + dir, "file://" + dir + "?dir_file_mode=0700&no_tmp_dir=1&metadata=skip"} {
		s, err := Open(ctx, u, keys)
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		if _, err := s.Put(ctx, "uploads/", strings.NewReader("x"), 10); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	for _, f := range files(t, dir) {
		if strings.HasSuffix(f, ".attrs") {
			t.Fatalf("sidecar written: %s", f)
		}
	}
}

func TestDeleteOlderThan(t *testing.T) {
	s, root := newStore(t)
	ctx := context.Background()
	put := func(prefix string) string {
		obj, err := s.Put(ctx, prefix, strings.NewReader("a,b\n"), 100)
		if err != nil {
			t.Fatal(err)
		}
		return obj.Key
	}
	now := time.Now()
	old1, old2, fresh := put("uploads/"), put("uploads/"), put("uploads/")
	oldExport := put("exports/")
	for _, k := range []string{old1, old2, oldExport} {
		if err := os.Chtimes(rawPath(root, k), now.Add(-48*time.Hour), now.Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// A temporary file an interrupted write left behind.
	stranded := "uploads/abc.18f0a1b2c3d4e5f6.tmp"
	if err := os.WriteFile(rawPath(root, stranded), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(rawPath(root, stranded), now.Add(-72*time.Hour), now.Add(-72*time.Hour))

	n, err := s.DeleteOlderThan(ctx, "uploads/", now.Add(-24*time.Hour), nil)
	if err != nil || n != 3 {
		t.Fatalf("DeleteOlderThan = %d, %v; want 3", n, err)
	}
	if keys, _ := s.List(ctx, "uploads/"); !slices.Equal(keys, []string{fresh}) {
		t.Fatalf("uploads left: %v, want %v", keys, []string{fresh})
	}
	if keys, _ := s.List(ctx, "exports/"); !slices.Equal(keys, []string{oldExport}) {
		t.Fatalf("exports left: %v, want the old export untouched", keys)
	}
	if f := files(t, root); len(f) != 2 {
		t.Fatalf("files left: %v", f)
	}
	if n, err := s.DeleteOlderThan(ctx, "uploads/", now.Add(-24*time.Hour), nil); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v", n, err)
	}
}

func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	pt := content(2*seg+9, 31)
	sA := openStore(t, dir, "A:"+keyA)
	obj, err := sA.Put(ctx, "uploads/", bytes.NewReader(pt), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	sA.Close()

	sBA := openStore(t, dir, "B:"+keyB+",A:"+keyA)
	if got := rd(t)(sBA.Open(ctx, obj.Key)); !bytes.Equal(got, pt) {
		t.Fatal("object under the old key differs after rotation")
	}
	if got := rd(t)(sBA.OpenRange(ctx, obj.Key, seg+1, 10)); !bytes.Equal(got, pt[seg+1:seg+11]) {
		t.Fatal("range under the old key differs after rotation")
	}
	objB, err := sBA.Put(ctx, "uploads/", bytes.NewReader(pt), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(rawPath(dir, objB.Key))
	if raw[5] != 1 || raw[6] != 'B' {
		t.Fatalf("new object's key id %q, want B (the primary)", raw[6:6+int(raw[5])])
	}

	// A ring without A cannot read A's object.
	sB := openStore(t, dir, "B:"+keyB)
	if _, err := sB.Open(ctx, obj.Key); !errors.Is(err, encryption.ErrDecrypt) || !errors.Is(err, encryption.ErrUnknownKey) {
		t.Fatalf("Open without the old key: %v, want ErrDecrypt and ErrUnknownKey", err)
	}
	if got := rd(t)(sB.Open(ctx, objB.Key)); !bytes.Equal(got, pt) {
		t.Fatal("object under B differs")
	}
}

// Benchmarks: 200 MiB through Put and a full Open read, encrypted (the
// store) and plaintext (the store's code before encryption, kept here).

const benchSize = 200 << 20

var benchData = sync.OnceValue(func() []byte { return content(benchSize, 99) })

// plainPut is Put as it was before encryption.
func plainPut(ctx context.Context, s *Store, key string, r io.Reader, maxBytes int64) (Object, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, key, nil)
	if err != nil {
		return Object{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, maxBytes+1))
	if err != nil {
		cancel()
		w.Close()
		return Object{}, err
	}
	return Object{Key: key, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, w.Close()
}

func BenchmarkPut(b *testing.B) {
	data := benchData()
	ctx := context.Background()
	b.Run("encrypted", func(b *testing.B) {
		s, _ := newStore(b)
		b.SetBytes(benchSize)
		for b.Loop() {
			obj, err := s.Put(ctx, "uploads/", bytes.NewReader(data), benchSize)
			if err != nil {
				b.Fatal(err)
			}
			s.Delete(ctx, obj.Key)
		}
	})
	b.Run("plaintext", func(b *testing.B) {
		s, _ := newStore(b)
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := plainPut(ctx, s, "uploads/plain", bytes.NewReader(data), benchSize); err != nil {
				b.Fatal(err)
			}
			s.Delete(ctx, "uploads/plain")
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	data := benchData()
	ctx := context.Background()
	s, _ := newStore(b)
	obj, err := s.Put(ctx, "uploads/", bytes.NewReader(data), benchSize)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := plainPut(ctx, s, "uploads/plain", bytes.NewReader(data), benchSize); err != nil {
		b.Fatal(err)
	}
	read := func(b *testing.B, open func() (io.ReadCloser, error)) {
		b.SetBytes(benchSize)
		buf := make([]byte, 32<<10) // the importer's bufio-sized reads
		for b.Loop() {
			r, err := open()
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf)
			r.Close()
			if err != nil || n != benchSize {
				b.Fatalf("read %d, %v", n, err)
			}
		}
	}
	b.Run("encrypted", func(b *testing.B) {
		read(b, func() (io.ReadCloser, error) { return s.Open(ctx, obj.Key) })
	})
	b.Run("plaintext", func(b *testing.B) { // the old Open
		read(b, func() (io.ReadCloser, error) { return s.bucket.NewReader(ctx, "uploads/plain", nil) })
	})
	b.Run("legacy", func(b *testing.B) { // a plaintext object through Open
		read(b, func() (io.ReadCloser, error) { return s.Open(ctx, "uploads/plain") })
	})
}

// A store reached through a symbolic link is tightened too; a file given
// as the store is refused and left alone.
func TestModesThroughSymlink(t *testing.T) {
	base := t.TempDir()
	target := filepath.Join(base, "real")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	openStore(t, link, "A:"+keyA)
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o700 {
		t.Fatalf("store directory mode %o, want 700", fi.Mode().Perm())
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), fileURL(file), keyring(t, "A:"+keyA)); err == nil {
		t.Fatal("Open of a file: no error")
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o644 {
		t.Fatalf("a file given as the store was changed to %o", fi.Mode().Perm())
	}
}
