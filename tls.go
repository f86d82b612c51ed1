package clusterd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
)

// A CertFile is a certificate chain and its private key, PEM files that
// every new worker loads as they are on disk: replacing them and rolling
// the workers (clusterd ctl reload) rotates the certificate.
type CertFile struct {
	Cert, Key string
}

// loadCerts loads every pair in files.
func loadCerts(files []CertFile) ([]tls.Certificate, error) {
	var certs []tls.Certificate
	for _, f := range files {
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("certificate %s, key %s: %w", f.Cert, f.Key, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// tlsConfig is what the workers serve TLS with: opts.TLSConfig, or an
// empty one, with the certificates of opts.TLSCerts added; nil when no
// listener is TLS.
func tlsConfig(opts Options) (*tls.Config, error) {
	if len(opts.TLSListen) == 0 {
		if opts.TLSConfig != nil || len(opts.TLSCerts) > 0 {
			return nil, errors.New("a TLS certificate is configured but no listener serves TLS")
		}
		return nil, nil
	}
	for _, a := range opts.TLSListen {
		if slices.Contains(opts.Listen, a) {
			return nil, fmt.Errorf("%s is both a TLS and a plaintext listener", a)
		}
	}
	cfg := opts.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	certs, err := loadCerts(opts.TLSCerts)
	if err != nil {
		return nil, err
	}
	cfg.Certificates = append(cfg.Certificates, certs...)
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return nil, errors.New("TLS listeners need a certificate and key")
	}
	return cfg, nil
}
