// Package tlsconf builds the TLS configurations of Arina's listeners from certificate
// files, and reloads them (SIGHUP) without restarting the listeners.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// Files names the PEM files of a server's TLS configuration.
type Files struct {
	CertFile string // the server's certificate chain
	KeyFile  string // its private key
	// ClientCAFile, if set, holds the CAs that sign client certificates: a client that
	// presents one must present a valid one, and RequireClientCert refuses clients that
	// present none.
	ClientCAFile      string
	RequireClientCert bool
}

// Server is a reloadable server TLS configuration.
type Server struct {
	files Files
	state atomic.Pointer[state]
}

type state struct {
	cert *tls.Certificate
	cas  *x509.CertPool
}

// Load reads the files; it fails if any is missing or invalid.
func Load(f Files) (*Server, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("tls: cert_file and key_file are both required")
	}
	if f.RequireClientCert && f.ClientCAFile == "" {
		return nil, errors.New("tls: require_client_cert needs client_ca_file")
	}
	s := &Server{files: f}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On error the previous configuration stays in force.
// New connections use the new certificate; established ones are not affected.
func (s *Server) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: loading %s and %s: %w", s.files.CertFile, s.files.KeyFile, err)
	}
	st := &state{cert: &cert}
	if s.files.ClientCAFile != "" {
		pem, err := os.ReadFile(s.files.ClientCAFile)
		if err != nil {
			return fmt.Errorf("tls: reading client_ca_file: %w", err)
		}
		st.cas = x509.NewCertPool()
		if !st.cas.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls: client_ca_file %s holds no PEM certificate", s.files.ClientCAFile)
		}
	}
	s.state.Store(st)
	return nil
}

// Config returns a tls.Config that always uses the latest loaded files.
func (s *Server) Config() *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.state.Load().cert, nil
		},
	}
	if s.files.ClientCAFile == "" {
		return c
	}
	// Client certificates are checked against the CAs loaded last: GetConfigForClient
	// returns a per-handshake copy naming them.
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		st := s.state.Load()
		cc := &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*st.cert},
			ClientCAs:    st.cas,
			ClientAuth:   tls.VerifyClientCertIfGiven,
		}
		if s.files.RequireClientCert {
			cc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return cc, nil
	}
	return c
}

// PeerName returns the common name of the verified client certificate of a TLS
// connection state, or "" when the client presented none.
func PeerName(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return ""
	}
	return cs.VerifiedChains[0][0].Subject.CommonName
}
