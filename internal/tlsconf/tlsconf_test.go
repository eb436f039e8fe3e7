package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"testing"

	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/internal/tlsconf"
)

// handshake runs one TLS handshake between a client with the given certificate (none
// when certFile is "") and a listener serving s, and returns the client's error and
// the name the server saw.
func handshake(t *testing.T, s *tlsconf.Server, c *testutil.Certs, certFile, keyFile string) (string, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			seen <- ""
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if tc.Handshake() != nil {
			seen <- ""
			return
		}
		cs := tc.ConnectionState()
		seen <- tlsconf.PeerName(&cs)
		_, _ = tc.Write([]byte("x"))
	}()
	pem, _ := os.ReadFile(c.CAFile)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		<-seen
		return "", err
	}
	defer conn.Close()
	// TLS 1.3 reports a refused client certificate on the first read.
	_, err = conn.Read(make([]byte, 1))
	return <-seen, err
}

func TestServer_ClientCertificates(t *testing.T) {
	c := testutil.MakeCerts(t)
	s, err := tlsconf.Load(tlsconf.Files{CertFile: c.ServerCert, KeyFile: c.ServerKey, ClientCAFile: c.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if name, err := handshake(t, s, c, c.ClientCert, c.ClientKey); err != nil || name != "badge-reader-1" {
		t.Errorf("valid client certificate: name %q, err %v; want badge-reader-1", name, err)
	}
	if name, err := handshake(t, s, c, "", ""); err != nil || name != "" {
		t.Errorf("no client certificate (optional): name %q, err %v; want accepted without a name", name, err)
	}
	if name, err := handshake(t, s, c, c.ExpiredCert, c.ExpiredKey); err == nil || name != "" {
		t.Errorf("expired client certificate: name %q, err %v; want refused", name, err)
	}
	// Go's client sends no certificate that the server's CAs did not sign; either way
	// the certificate names nobody.
	if name, _ := handshake(t, s, c, c.OtherCAClientCrt, c.OtherCAClientKey); name != "" {
		t.Errorf("another CA's client certificate: name %q, want none", name)
	}

	req, err := tlsconf.Load(tlsconf.Files{CertFile: c.ServerCert, KeyFile: c.ServerKey, ClientCAFile: c.CAFile, RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := handshake(t, req, c, "", ""); err == nil {
		t.Error("required client certificate: a client without one was accepted")
	}
}

func TestServer_Reload(t *testing.T) {
	c := testutil.MakeCerts(t)
	s, err := tlsconf.Load(tlsconf.Files{CertFile: c.ServerCert, KeyFile: c.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	// A broken file on reload keeps the previous certificate in force.
	if err := os.WriteFile(c.ServerCert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Fatal("Reload accepted a broken certificate file")
	}
	if _, err := handshake(t, s, c, "", ""); err != nil {
		t.Fatalf("handshake after a failed reload: %v", err)
	}
	// A new certificate is used by new connections.
	c2 := testutil.MakeCerts(t)
	for _, f := range [][2]string{{c2.ServerCert, c.ServerCert}, {c2.ServerKey, c.ServerKey}} {
		b, _ := os.ReadFile(f[0])
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	var uae x509.UnknownAuthorityError
	if _, err := handshake(t, s, c, "", ""); !errors.As(err, &uae) {
		t.Fatalf("handshake with the old CA after reloading a certificate of another CA: %v, want unknown authority", err)
	}
	if _, err := handshake(t, s, c2, "", ""); err != nil {
		t.Fatalf("handshake with the new CA: %v", err)
	}
}

func TestLoad_Errors(t *testing.T) {
	c := testutil.MakeCerts(t)
	for name, f := range map[string]tlsconf.Files{
		"no key":              {CertFile: c.ServerCert},
		"missing file":        {CertFile: c.ServerCert + ".nope", KeyFile: c.ServerKey},
		"require without CAs": {CertFile: c.ServerCert, KeyFile: c.ServerKey, RequireClientCert: true},
		"CA file not PEM":     {CertFile: c.ServerCert, KeyFile: c.ServerKey, ClientCAFile: c.ServerKey},
	} {
		if _, err := tlsconf.Load(f); err == nil {
			t.Errorf("%s: Load accepted %+v", name, f)
		}
	}
}
