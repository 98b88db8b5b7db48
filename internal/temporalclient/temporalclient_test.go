package temporalclient

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/payments/internal/config"
)

func TestTLSConfigOffWithoutSettings(t *testing.T) {
	tc, err := TLSConfig(config.TLSFiles{})
	if err != nil || tc != nil {
		t.Fatalf("TLSConfig(empty) = %v, %v; want nil, nil", tc, err)
	}
}

func TestTLSConfigServerNameOnly(t *testing.T) {
	tc, err := TLSConfig(config.TLSFiles{ServerName: "temporal.example"})
	if err != nil {
		t.Fatal(err)
	}
	if tc.ServerName != "temporal.example" || tc.RootCAs != nil || len(tc.Certificates) != 0 {
		t.Fatalf("got ServerName %q RootCAs %v certs %d", tc.ServerName, tc.RootCAs, len(tc.Certificates))
	}
}

func TestTLSConfigErrorsNameTheVariable(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		files config.TLSFiles
		want  string
	}{
		{config.TLSFiles{Cert: "c.pem"}, "TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY"},
		{config.TLSFiles{CA: filepath.Join(dir, "missing.pem")}, "TEMPORAL_TLS_CA"},
		{config.TLSFiles{CA: notPEM}, "no PEM certificate"},
		{config.TLSFiles{Cert: notPEM, Key: notPEM}, "TEMPORAL_TLS_CERT/TEMPORAL_TLS_KEY"},
	} {
		_, err := TLSConfig(tc.files)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TLSConfig(%+v) = %v; want an error containing %q", tc.files, err, tc.want)
		}
	}
}
