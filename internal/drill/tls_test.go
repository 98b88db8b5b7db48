package drill

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/acme/payments/internal/gen"
	"github.com/acme/payments/internal/temporalserver"
)

// TestMutualTLS runs the topology against a frontend that demands client
// certificates: the worker, API and CLI connect through TEMPORAL_TLS_*, an
// import completes, and a client without a certificate is refused.
func TestMutualTLS(t *testing.T) {
	certs := generateCerts(t, filepath.Join(shared.dir, "certs"), "temporal.drill")
	c := startCluster(t, 1, certs)
	api := newAPI(c)
	path, st := writeFile(t, "orders-tls.csv", gen.Options{Kind: gen.KindOrders, Count: 20_000, Seed: 6, OrderIDPrefix: "TLS-"})
	id, _ := api.upload(t, path, "?type=orders")
	j := awaitJob(t, id, 5*time.Minute, completed)
	checkCounters(t, "orders over mTLS", j, st.Rows)

	pool := x509.NewCertPool()
	ca, err := os.ReadFile(certs.CAFile)
	must(t, err)
	pool.AppendCertsFromPEM(ca)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	anon, err := client.DialContext(ctx, client.Options{
		HostPort: c.Temporal.Address(), Namespace: "default",
		ConnectionOptions: client.ConnectionOptions{TLS: &tls.Config{RootCAs: pool, ServerName: certs.ServerName}},
	})
	if err == nil {
		_, err = anon.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: "default"})
		anon.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate reached the mTLS frontend")
	}
	t.Logf("mtls: %d rows imported through a frontend requiring client certificates; a client without one: %v", st.Rows, err)
}

// generateCerts writes a CA, a server certificate for name and 127.0.0.1,
// and a client certificate, all signed by the CA.
func generateCerts(t *testing.T, dir, name string) *temporalserver.TLS {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o700))
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drill CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	must(t, err)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER)

	issue := func(file string, serial int64, usage x509.ExtKeyUsage) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			DNSNames: []string{name, "localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		must(t, err)
		writePEM(t, filepath.Join(dir, file+".pem"), "CERTIFICATE", der)
		kb, err := x509.MarshalPKCS8PrivateKey(key)
		must(t, err)
		writePEM(t, filepath.Join(dir, file+"-key.pem"), "PRIVATE KEY", kb)
	}
	issue("server", 2, x509.ExtKeyUsageServerAuth)
	issue("client", 3, x509.ExtKeyUsageClientAuth)
	return &temporalserver.TLS{
		CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem"),
		CAFile: filepath.Join(dir, "ca.pem"), ServerName: name,
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	must(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}
