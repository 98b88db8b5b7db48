// Package staging is the store for uploaded and exported files
// (gocloud.dev/blob): a directory on this machine by default, or a bucket
// (s3://, gs://, azblob://) that every worker reads.
package staging

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file://
	_ "gocloud.dev/blob/s3blob"   // s3://
	"gocloud.dev/gcerrors"
)

// ErrTooLarge is returned by Put when the content passes the size limit.
var ErrTooLarge = errors.New("file exceeds the upload size limit")

// ErrNotFound is returned for a key the store does not hold.
var ErrNotFound = errors.New("staged file not found")

// Store is a staging bucket.
type Store struct {
	bucket *blob.Bucket
}

// Open opens the bucket at url (for example file:///var/lib/payments/blobs).
func Open(ctx context.Context, url string) (*Store, error) {
	b, err := blob.OpenBucket(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open staging store: %w", err)
	}
	return &Store{bucket: b}, nil
}

// Close releases the bucket.
func (s *Store) Close() error { return s.bucket.Close() }

// Object describes a stored file.
type Object struct {
	Key    string
	SHA256 string // hex of the content's SHA-256
	Size   int64
}

// Put streams r into a new object under prefix while hashing it, never
// holding the whole content in memory. Content larger than maxBytes is
// refused with ErrTooLarge and nothing stays stored.
func (s *Store) Put(ctx context.Context, prefix string, r io.Reader, maxBytes int64) (Object, error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Object{}, err
	}
	key := prefix + hex.EncodeToString(rnd[:])
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return Object{}, fmt.Errorf("stage %s: %w", key, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, maxBytes+1))
	if err == nil && n > maxBytes {
		err = ErrTooLarge
	}
	if err != nil {
		cancel() // a cancelled writer discards what it wrote
		_ = w.Close()
		_ = s.bucket.Delete(context.WithoutCancel(ctx), key)
		if errors.Is(err, ErrTooLarge) {
			return Object{}, err
		}
		return Object{}, fmt.Errorf("stage %s: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return Object{}, fmt.Errorf("stage %s: %w", key, err)
	}
	return Object{Key: key, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

// Open reads the whole object.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	return s.OpenRange(ctx, key, 0, -1)
}

// OpenRange reads length bytes from offset (length < 0: to the end).
func (s *Store) OpenRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	r, err := s.bucket.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("read staged %s: %w", key, err)
	}
	return r, nil
}

// Size is the stored size of key.
func (s *Store) Size(ctx context.Context, key string) (int64, error) {
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return 0, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return 0, err
	}
	return a.Size, nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.bucket.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete staged %s: %w", key, err)
	}
	return nil
}
