package staging

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/acme/payments/internal/s3server"
)

// TestS3Store runs the store against an S3-compatible server over HTTP with
// path-style addressing and an endpoint override, the shape of a shared
// staging store that workers on other hosts read.
func TestS3Store(t *testing.T) {
	srv, err := s3server.Start("127.0.0.1:0", "staging")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	t.Setenv("AWS_ACCESS_KEY_ID", s3server.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3server.SecretAccessKey)
	os.Unsetenv("AWS_PROFILE")
	ctx := context.Background()
	s, err := Open(ctx, srv.BlobURL(), keyring(t, "A:"+keyA))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	pt := content(3*seg+777, 7)
	obj, err := s.Put(ctx, "uploads/", bytes.NewReader(pt), 10<<20)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := rd(t)(s.Open(ctx, obj.Key)); !bytes.Equal(got, pt) {
		t.Fatalf("Open: %d bytes differ from the %d written", len(got), len(pt))
	}
	off, n := int64(seg-10), int64(seg+20)
	if got := rd(t)(s.OpenRange(ctx, obj.Key, off, n)); !bytes.Equal(got, pt[off:off+n]) {
		t.Fatalf("OpenRange(%d, %d) differs", off, n)
	}
	if size, err := s.Size(ctx, obj.Key); err != nil || size != int64(len(pt)) {
		t.Fatalf("Size = %d, %v; want %d", size, err, len(pt))
	}
	keys, err := s.List(ctx, "uploads/")
	if err != nil || len(keys) != 1 || keys[0] != obj.Key {
		t.Fatalf("List = %v, %v; want [%s]", keys, err, obj.Key)
	}
	// What the server holds is ciphertext, as on disk.
	raw, err := s.bucket.ReadAll(ctx, obj.Key)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(marker)) {
		t.Fatal("the S3 object holds plaintext")
	}
	if n, err := s.DeleteOlderThan(ctx, "uploads/", time.Now().Add(time.Hour), nil); err != nil || n != 1 {
		t.Fatalf("DeleteOlderThan = %d, %v; want 1", n, err)
	}
	if _, err := s.Open(ctx, obj.Key); err == nil {
		t.Fatal("Open after delete succeeded")
	}
}
