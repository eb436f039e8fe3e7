package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/arina-dev/arina/bridge"
)

// BridgeConfig is the bridge section: remote brokers to take events from.
type BridgeConfig struct {
	Upstreams []UpstreamConfig `mapstructure:"upstreams"`
}

// UpstreamConfig is one entry of bridge.upstreams.
type UpstreamConfig struct {
	Name                 string        `mapstructure:"name"`
	URL                  string        `mapstructure:"url"`
	ClientID             string        `mapstructure:"client_id"` // {hostname} is replaced by the host's name
	Username             string        `mapstructure:"username"`
	Password             string        `mapstructure:"password"`
	Topics               []string      `mapstructure:"topics"`
	ShareGroup           string        `mapstructure:"share_group"`
	MaxReconnectInterval time.Duration `mapstructure:"max_reconnect_interval"`
	TLS                  ClientTLS     `mapstructure:"tls"`
	Sparkplug            bool          `mapstructure:"sparkplug"` // also spBv1.0/#, decoded (needs sparkplug.enabled)
}

// ClientTLS configures TLS towards a remote server.
type ClientTLS struct {
	CAFile             string `mapstructure:"ca_file"`   // PEM roots; empty: the system's
	CertFile           string `mapstructure:"cert_file"` // client certificate, with key_file
	KeyFile            string `mapstructure:"key_file"`
	ServerName         string `mapstructure:"server_name"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// config returns the tls.Config, or nil when nothing is set.
func (t ClientTLS) config() (*tls.Config, error) {
	if t == (ClientTLS{}) {
		return nil, nil
	}
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate found", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("cert_file and key_file go together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// upstreams converts and checks the bridge section.
func (b BridgeConfig) upstreams() ([]bridge.Upstream, error) {
	var ups []bridge.Upstream
	var errs []error
	for i, u := range b.Upstreams {
		tc, err := u.TLS.config()
		if err != nil {
			errs = append(errs, &ConfigError{Field: fmt.Sprintf("bridge.upstreams[%d].tls", i), Value: u.TLS.CertFile + u.TLS.CAFile, Err: err})
		}
		clientID := u.ClientID
		if strings.Contains(clientID, "{hostname}") {
			host, err := os.Hostname()
			if err != nil {
				errs = append(errs, &ConfigError{Field: fmt.Sprintf("bridge.upstreams[%d].client_id", i), Value: clientID, Err: err})
			}
			clientID = strings.ReplaceAll(clientID, "{hostname}", host)
		}
		ups = append(ups, bridge.Upstream{
			Name: u.Name, URL: u.URL, ClientID: clientID, Username: u.Username, Password: u.Password,
			TLS: tc, Topics: u.Topics, ShareGroup: u.ShareGroup, MaxReconnectInterval: u.MaxReconnectInterval,
			Sparkplug: u.Sparkplug,
		})
	}
	if err := bridge.CheckUpstreams(ups); err != nil {
		errs = append(errs, err)
	}
	return ups, errors.Join(errs...)
}
