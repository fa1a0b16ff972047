package supervisor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// The host's TLS client certificate for the control connection of every
// plugin process, made once per host process. go-plugin's AutoMTLS makes a
// new ECDSA P-521 key and certificate for every process it starts, about
// 3 ms of CPU on the path of every restart (P-521 has no assembly in Go's
// crypto), and its signature costs the plugin another P-521 verification
// in the handshake. The certificate is the one AutoMTLS would make
// (self-signed, a CA, for DNS:localhost, client and server authentication)
// with a P-256 key, as the Python SDK's is: the plugin side of AutoMTLS
// trusts whatever PLUGIN_CLIENT_CERT holds (sdk/protocol/SPEC.md, §3).
var hostCert struct {
	once sync.Once
	pem  []byte
	cert tls.Certificate
	err  error
}

// clientTLS returns the TLS configuration of one plugin's control
// connection (go-plugin adds the plugin's certificate to it as it reads
// the handshake, so each process needs its own) and the PEM certificate for
// the plugin's PLUGIN_CLIENT_CERT.
func clientTLS() (*tls.Config, []byte, error) {
	hostCert.once.Do(func() { hostCert.pem, hostCert.cert, hostCert.err = makeCert() })
	if hostCert.err != nil {
		return nil, nil, hostCert.err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{hostCert.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
		ServerName:   "localhost",
	}, hostCert.pem, nil
}

func makeCert() ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("host TLS key: %w", err)
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("host TLS certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"sockplay"}},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              now.AddDate(30, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("host TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("host TLS key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("host TLS certificate: %w", err)
	}
	return certPEM, cert, nil
}
