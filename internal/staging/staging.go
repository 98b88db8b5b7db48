// Package staging is the store for uploaded and exported files
// (gocloud.dev/blob): a directory on this machine by default, or a bucket
// (s3://, gs://, azblob://) that every worker reads.
//
// # Encryption at rest
//
// Every object the store writes is encrypted with the service keyring's
// streaming AEAD ([encryption.Keyring.NewEncryptWriter], under the primary
// key), with the associated data "staging:" + key: an object copied or
// renamed to another key fails to decrypt, wrapping [encryption.ErrDecrypt].
// All sizes and offsets of the API (Object.Size, Size, OpenRange) are in
// plaintext bytes; OpenRange reads and authenticates only the segments that
// overlap the range. Any key of the ring decrypts, so objects written before
// a key rotation stay readable while the old key is in the ring.
//
// # Legacy plaintext objects
//
// Objects staged by versions before encryption (for example an upload whose
// import is still running across the upgrade) are plaintext. An object is
// read as encrypted exactly when its first bytes are the stream magic
// ([encryption.IsEncryptedStream]); anything else is served as it is. The
// magic starts with 0x89, which no CSV, XML or JSON text starts with, so a
// legacy upload is never mistaken for an encrypted one. Legacy objects are
// not authenticated (they never were); they leave the store with the
// retention sweep ([Store.DeleteOlderThan]). New objects are never written
// in plaintext.
//
// # Local stores (file://)
//
// Open adds to a file:// URL what keeps the files private: directories are
// created 0700 (dir_file_mode=0700), temporary files are written next to
// their final name inside the store (no_tmp_dir, so a file being written
// never sits in the shared os.TempDir and the final rename stays on one
// file system), no metadata sidecars are written (metadata=skip), and each
// file is chmod-ed to 0600 before its first byte is written, whatever the
// umask. Open also tightens what an older version left behind: the root and
// every directory under it to 0700, every file to 0600.
package staging

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file://
	_ "gocloud.dev/blob/s3blob"   // s3://
	"gocloud.dev/gcerrors"

	"github.com/acme/payments/internal/encryption"
)

// ErrTooLarge is returned by Put when the content passes the size limit.
var ErrTooLarge = errors.New("file exceeds the upload size limit")

// ErrNotFound is returned for a key the store does not hold.
var ErrNotFound = errors.New("staged file not found")

// Modes of a local (file://) store.
const (
	fileMode = 0o600
	dirMode  = 0o700
)

// tempSuffix ends the names of fileblob's temporary files, which a local
// store keeps next to their final names while they are written. Keys with
// this suffix are reserved so List can leave those files out.
const tempSuffix = ".tmp"

// copyBufferSize is Put's copy buffer: several whole segments, which the
// encrypting writer seals straight from the buffer.
const copyBufferSize = 4 * encryption.StreamSegmentSize

// Store is a staging bucket whose objects are encrypted at rest.
type Store struct {
	bucket *blob.Bucket
	keys   *encryption.Keyring
	root   string // the directory of a file:// store, else ""
}

// Open opens the bucket at url (for example file:///var/lib/payments/blobs
// or s3://bucket?region=…); objects are encrypted with keys. For a file://
// URL it sets the options described in the package documentation (a
// dir_file_mode other than 0700 or metadata sidecars are refused) and
// tightens the modes of what is already stored.
func Open(ctx context.Context, url string, keys *encryption.Keyring) (*Store, error) {
	if keys == nil || len(keys.KeyIDs()) == 0 {
		return nil, errors.New("open staging store: no encryption keys")
	}
	burl, root, err := localOptions(url)
	if err != nil {
		return nil, fmt.Errorf("open staging store: %w", err)
	}
	if root != "" {
		// Before the bucket exists: create_dir then creates it 0700.
		if err := tightenModes(root); err != nil {
			return nil, fmt.Errorf("open staging store: %w", err)
		}
	}
	b, err := blob.OpenBucket(ctx, burl)
	if err != nil {
		return nil, fmt.Errorf("open staging store: %w", err)
	}
	return &Store{bucket: b, keys: keys, root: root}, nil
}

// localOptions returns url with the options of a private local store added
// when it is a file:// URL, and that store's directory (else "", url
// unchanged).
func localOptions(raw string) (string, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "file" {
		return raw, "", nil // not ours to judge; blob.OpenBucket reports bad URLs
	}
	q := u.Query()
	if v := q.Get("dir_file_mode"); v != "" {
		if m, err := strconv.ParseUint(v, 0, 32); err != nil || m != dirMode {
			return "", "", fmt.Errorf("file:// store: dir_file_mode=%s: staged files must be in 0700 directories", v)
		}
	}
	if v, ok := q["metadata"]; ok && (len(v) != 1 || v[0] != "skip") {
		return "", "", errors.New("file:// store: metadata sidecars are not supported (use metadata=skip)")
	}
	q.Set("dir_file_mode", "0700")
	q.Set("no_tmp_dir", "true")
	q.Set("metadata", "skip")
	u.RawQuery = q.Encode()

	// The directory as fileblob derives it from the URL.
	p := u.Path
	if u.Host == "." || os.PathSeparator != '/' {
		p = strings.TrimPrefix(p, "/")
	}
	root, err := filepath.Abs(filepath.FromSlash(p))
	if err != nil {
		return "", "", fmt.Errorf("file:// store: %w", err)
	}
	return u.String(), root, nil
}

// tightenModes sets the modes of a local store that already exists: 0700 on
// the root and every directory under it, 0600 on every file. Entries that
// vanish meanwhile (a concurrent rename or delete) are skipped.
func tightenModes(root string) error {
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return nil // nothing yet, or not a directory: blob.OpenBucket says so
	}
	// The root may be a symbolic link to the store's directory; links
	// under it are not followed.
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("file:// store: %w", err)
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("file:// store: %w", err)
		}
		var want fs.FileMode
		switch {
		case d.IsDir():
			want = dirMode
		case d.Type().IsRegular():
			want = fileMode
		default:
			return nil // symlinks and the like: not followed, not changed
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("file:// store: %w", err)
		}
		if info.Mode().Perm() == want {
			return nil
		}
		if err := os.Chmod(path, want); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("file:// store: setting mode %o: %w", want, err)
		}
		return nil
	})
}

// Close releases the bucket.
func (s *Store) Close() error { return s.bucket.Close() }

// aad is the associated data of the object at key.
func aad(key string) []byte { return []byte("staging:" + key) }

// Object describes a stored file.
type Object struct {
	Key    string
	SHA256 string // hex of the plaintext's SHA-256
	Size   int64  // plaintext bytes
}

// Put streams r into a new encrypted object under prefix while hashing it,
// never holding the whole content in memory. Content larger than maxBytes
// is refused with ErrTooLarge and nothing stays stored.
func (s *Store) Put(ctx context.Context, prefix string, r io.Reader, maxBytes int64) (Object, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Object{}, err
	}
	key := prefix + hex.EncodeToString(rnd[:])
	w, err := s.create(ctx, key)
	if err != nil {
		return Object{}, err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w.enc, h), io.LimitReader(r, maxBytes+1), make([]byte, copyBufferSize))
	if err == nil && n > maxBytes {
		err = ErrTooLarge
	}
	if err == nil {
		err = w.commit()
	}
	if err != nil {
		w.Abort()
		// The key is new, so nothing of value is there; a cancelled write
		// stores nothing, and this covers stores that commit regardless.
		_ = s.bucket.Delete(context.WithoutCancel(ctx), key)
		if errors.Is(err, ErrTooLarge) {
			return Object{}, err
		}
		return Object{}, fmt.Errorf("stage %s: %w", key, err)
	}
	return Object{Key: key, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// Writer streams an encrypted object to its key; see [Store.Create]. It is
// not safe for concurrent use.
type Writer struct {
	key    string
	bw     *blob.Writer
	enc    io.WriteCloser
	cancel context.CancelFunc
	state  writerState
	err    error // a failed Close's error
}

type writerState int

const (
	writing writerState = iota
	committed
	failed
	aborted
)

// Create starts writing an encrypted object at key, replacing any object
// there once the writer is closed. The object appears only when Close
// succeeds; Abort (or cancelling ctx, which governs the whole write)
// discards what was written and leaves any earlier object at key as it was.
// Keys ending in ".tmp" are reserved (a local store's temporary files).
func (s *Store) Create(ctx context.Context, key string) (*Writer, error) {
	if key == "" || strings.HasSuffix(key, tempSuffix) {
		return nil, fmt.Errorf("stage %q: invalid key (empty or ending in %s)", key, tempSuffix)
	}
	return s.create(ctx, key)
}

func (s *Store) create(ctx context.Context, key string) (*Writer, error) {
	wctx, cancel := context.WithCancel(ctx)
	bw, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{
		ContentType: "application/octet-stream",
		BeforeWrite: func(as func(any) bool) error {
			// A local store's file (still under its temporary name):
			// private before it holds a byte, whatever the umask.
			var f *os.File
			if as(&f) {
				return f.Chmod(fileMode)
			}
			return nil
		},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("stage %s: %w", key, err)
	}
	enc, err := s.keys.NewEncryptWriter(bw, aad(key))
	if err != nil {
		cancel()
		_ = bw.Close()
		return nil, fmt.Errorf("stage %s: %w", key, err)
	}
	return &Writer{key: key, bw: bw, enc: enc, cancel: cancel}, nil
}

// Write encrypts p into the object.
func (w *Writer) Write(p []byte) (int, error) {
	if w.state != writing {
		return 0, fmt.Errorf("stage %s: write after Close or Abort", w.key)
	}
	n, err := w.enc.Write(p)
	if err != nil {
		return n, fmt.Errorf("stage %s: %w", w.key, err)
	}
	return n, nil
}

// Close writes the end of the stream and commits the object; on an error
// nothing is committed. Closing again returns the first result; Close after
// Abort is an error.
func (w *Writer) Close() error {
	switch w.state {
	case committed:
		return nil
	case failed:
		return w.err
	case aborted:
		return fmt.Errorf("stage %s: Close after Abort", w.key)
	}
	if err := w.commit(); err != nil {
		w.err = fmt.Errorf("stage %s: %w", w.key, err)
		return w.err
	}
	return nil
}

// commit is Close with the error unwrapped.
func (w *Writer) commit() error {
	defer w.cancel()
	if err := w.enc.Close(); err != nil {
		w.state = failed
		w.cancel() // do not commit a truncated stream
		_ = w.bw.Close()
		return err
	}
	if err := w.bw.Close(); err != nil {
		w.state = failed
		return err
	}
	w.state = committed
	return nil
}

// Abort discards the object being written: nothing of it is stored. It is
// a no-op after Close or Abort, so it can be deferred.
func (w *Writer) Abort() {
	if w.state != writing {
		return
	}
	w.state = aborted
	w.cancel() // a cancelled blob writer discards what it wrote
	_ = w.bw.Close()
}

// Open reads the whole object, decrypted (a legacy plaintext object as it
// is), with one read of the bucket. Each segment is authenticated before
// its bytes are returned, and a truncated or modified object fails with an
// error wrapping encryption.ErrDecrypt when that point is reached: the
// content is complete and genuine only once Read has returned io.EOF.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, readError(key, err)
	}
	var magic [4]byte
	n, err := io.ReadFull(r, magic[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		r.Close()
		return nil, readError(key, err)
	}
	src := io.MultiReader(bytes.NewReader(magic[:n]), r)
	if !encryption.IsEncryptedStream(magic[:n]) {
		return &readCloser{key: key, r: src, c: r}, nil // legacy plaintext
	}
	dr, err := s.keys.NewDecryptReader(src, aad(key))
	if err != nil {
		r.Close()
		return nil, readError(key, err)
	}
	return &readCloser{key: key, r: dr, c: r}, nil
}

// OpenRange reads length plaintext bytes from offset (length < 0, or a
// range past the end: to the end). It reads the object's header, then only
// the segments overlapping the range, each authenticated before its bytes
// are returned.
func (s *Store) OpenRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("read staged %s: negative offset %d", key, offset)
	}
	if offset == 0 && length < 0 {
		return s.Open(ctx, key)
	}
	hdr, size, err := s.head(ctx, key)
	if err != nil {
		return nil, err
	}
	if !encryption.IsEncryptedStream(hdr) {
		r, err := s.bucket.NewRangeReader(ctx, key, offset, length, nil) // legacy plaintext
		if err != nil {
			return nil, readError(key, err)
		}
		return &readCloser{key: key, r: r, c: r}, nil
	}
	// Serve the header from the probe rather than reading it again.
	open := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		if off == 0 && len(hdr) == encryption.StreamHeaderSize && n >= int64(len(hdr)) {
			if n == int64(len(hdr)) {
				return io.NopCloser(bytes.NewReader(hdr)), nil
			}
			r, err := s.bucket.NewRangeReader(ctx, key, int64(len(hdr)), n-int64(len(hdr)), nil)
			if err != nil {
				return nil, err
			}
			return struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(hdr), r), r}, nil
		}
		return s.bucket.NewRangeReader(ctx, key, off, n, nil)
	}
	r, err := s.keys.OpenDecryptRange(ctx, size, open, aad(key), offset, length)
	if err != nil {
		return nil, readError(key, err)
	}
	return &readCloser{key: key, r: r, c: r}, nil
}

// head returns the first bytes of the object at key (up to a stream
// header) and its stored size.
func (s *Store) head(ctx context.Context, key string) ([]byte, int64, error) {
	r, err := s.bucket.NewRangeReader(ctx, key, 0, encryption.StreamHeaderSize, nil)
	if err != nil {
		return nil, 0, readError(key, err)
	}
	defer r.Close()
	hdr := make([]byte, encryption.StreamHeaderSize)
	n, err := io.ReadFull(r, hdr)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, 0, readError(key, err)
	}
	return hdr[:n], r.Size(), nil
}

// Size is the plaintext size of key. It is computed from the stored size,
// not authenticated: reading the object is.
func (s *Store) Size(ctx context.Context, key string) (int64, error) {
	hdr, size, err := s.head(ctx, key)
	if err != nil {
		return 0, err
	}
	if !encryption.IsEncryptedStream(hdr) {
		return size, nil // legacy plaintext
	}
	n, err := encryption.StreamPlaintextSize(size)
	if err != nil {
		return 0, fmt.Errorf("staged %s: %w", key, err)
	}
	return n, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete staged %s: %w", key, err)
	}
	return nil
}

// List returns the keys of the objects under prefix, in the bucket's
// order (lexical for the stores in use). Files of a local store still being
// written (or left by an interrupted write) are not listed.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := s.each(ctx, prefix, func(o *blob.ListObject) {
		if !s.isTemp(o.Key) {
			keys = append(keys, o.Key)
		}
	})
	return keys, err
}

// DeleteOlderThan deletes the objects under prefix last modified before
// before (the retention sweep of staged uploads) and returns how many it
// deleted. On a local store it also deletes the temporary files that
// interrupted writes left behind, by the same rule. Objects keep (if not
// nil) holds on to stay. An object deleted meanwhile by someone else is not
// counted and is not an error.
func (s *Store) DeleteOlderThan(ctx context.Context, prefix string, before time.Time, keep func(key string) bool) (int, error) {
	var old []string
	err := s.each(ctx, prefix, func(o *blob.ListObject) {
		if o.ModTime.Before(before) && (keep == nil || !keep(o.Key)) {
			old = append(old, o.Key)
		}
	})
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, key := range old {
		err := s.bucket.Delete(ctx, key)
		switch {
		case err == nil:
			deleted++
		case gcerrors.Code(err) == gcerrors.NotFound:
		default:
			return deleted, fmt.Errorf("delete staged %s: %w", key, err)
		}
	}
	return deleted, nil
}

// each calls f for every object (not directory) under prefix.
func (s *Store) each(ctx context.Context, prefix string, f func(*blob.ListObject)) error {
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list staged %s: %w", prefix, err)
		}
		if !o.IsDir {
			f(o)
		}
	}
}

// isTemp reports whether key is a local store's temporary file.
func (s *Store) isTemp(key string) bool {
	return s.root != "" && strings.HasSuffix(key, tempSuffix)
}

// readError wraps an error of reading key, mapping a missing object to
// ErrNotFound.
func readError(key string, err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return fmt.Errorf("read staged %s: %w", key, err)
}

// readCloser reads r, naming the key in its errors, and closes c.
type readCloser struct {
	key string
	r   io.Reader
	c   io.Closer
}

func (r *readCloser) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read staged %s: %w", r.key, err)
	}
	return n, err
}

func (r *readCloser) Close() error { return r.c.Close() }
