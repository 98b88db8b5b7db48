// Package s3server runs an S3-compatible server in-process (gofakes3 over
// memory) for the drills and `starter cluster`: a shared staging store that
// every worker and API process reaches over HTTP, as they reach S3 in
// production.
package s3server

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Credentials the server accepts; gofakes3 checks none, the AWS SDK needs
// some. Processes get them as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
const (
	AccessKeyID     = "payments-staging"
	SecretAccessKey = "payments-staging-secret"
)

// Server is a running S3-compatible endpoint holding one bucket.
type Server struct {
	srv    *http.Server
	addr   string
	bucket string
}

// Start listens on addr (127.0.0.1:0 for any port) and creates bucket.
func Start(addr, bucket string) (*Server, error) {
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		return nil, fmt.Errorf("s3 server: create bucket %s: %w", bucket, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("s3 server: listen on %s: %w", addr, err)
	}
	faker := gofakes3.New(backend, gofakes3.WithAutoBucket(false))
	s := &Server{
		// gofakes3 reports a client gone mid-response through the
		// server's error log; a cut connection is the drills' business.
		srv:    &http.Server{Handler: faker.Server(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)},
		addr:   ln.Addr().String(),
		bucket: bucket,
	}
	go s.srv.Serve(ln)
	return s, nil
}

// Endpoint is the server's http:// base URL.
func (s *Server) Endpoint() string { return "http://" + s.addr }

// BlobURL is the gocloud.dev s3:// URL of the bucket on this server, for
// PAYMENTS_BLOB_URL: path-style addressing, plain HTTP, checksums only
// where S3 requires them.
func (s *Server) BlobURL() string {
	q := url.Values{}
	q.Set("endpoint", s.Endpoint())
	q.Set("region", "us-east-1")
	q.Set("use_path_style", "true")
	q.Set("disable_https", "true")
	q.Set("request_checksum_calculation", "when_required")
	q.Set("response_checksum_validation", "when_required")
	return "s3://" + s.bucket + "?" + q.Encode()
}

// Env is what a process needs besides BlobURL to authenticate.
func Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + SecretAccessKey}
}

// Close stops the server; its objects are gone.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
