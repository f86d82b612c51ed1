package clusterd

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/clusterd/clusterd/internal/testcert"
)

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	a, err := testcert.New("a.example")
	if err != nil {
		t.Fatal(err)
	}
	b, err := testcert.New("b.example")
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := a.Write(dir, "a")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := tls.X509KeyPair(b.CertPEM, b.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	files := []CertFile{{Cert: crt, Key: key}}
	base := &tls.Config{Certificates: []tls.Certificate{kb}, MinVersion: tls.VersionTLS13}

	cfg, err := tlsConfig(Options{TLSListen: []string{":8443"}, TLSCerts: files, TLSConfig: base})
	if err != nil || len(cfg.Certificates) != 2 || cfg.MinVersion != tls.VersionTLS13 {
		t.Fatalf("embedder's config with a file: %v, %v", cfg, err)
	}
	if len(base.Certificates) != 1 {
		t.Error("the embedder's config was changed")
	}
	// SNI picks the certificate by name.
	for name, pool := range map[string]*testcert.Cert{"a.example": a, "b.example": b} {
		cc, sc := net.Pipe()
		go func() { _ = tls.Server(sc, cfg).Handshake(); sc.Close() }()
		c := tls.Client(cc, &tls.Config{ServerName: name, RootCAs: pool.Pool})
		if err := c.Handshake(); err != nil {
			t.Errorf("SNI %s: %v", name, err)
		} else if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != name {
			t.Errorf("SNI %s: got the certificate of %s", name, got)
		}
		c.Close()
	}
	if cfg, err := tlsConfig(Options{}); cfg != nil || err != nil {
		t.Errorf("no TLS: %v, %v", cfg, err)
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{TLSListen: []string{":8443"}}, "need a certificate"},
		{Options{TLSCerts: files}, "no listener serves TLS"},
		{Options{TLSListen: []string{":8443"}, Listen: []string{":8443"}, TLSCerts: files}, "both a TLS and a plaintext listener"},
		{Options{TLSListen: []string{":8443"}, TLSCerts: []CertFile{{Cert: crt, Key: crt}}}, "certificate " + crt},
	} {
		if _, err := tlsConfig(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		}
	}
}
