package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/internal/tlsconf"
)

// MQTTAuth is mqtt.auth.
type MQTTAuth struct {
	UsersFile string `mapstructure:"users_file"`
}

// HTTPAuth is http.auth.
type HTTPAuth struct {
	TokensFile string `mapstructure:"tokens_file"`
}

// MQTTTLS is mqtt.tls: MQTT over TLS, and the certificate of secure WebSockets.
type MQTTTLS struct {
	Listen            string `mapstructure:"listen"`
	CertFile          string `mapstructure:"cert_file"`
	KeyFile           string `mapstructure:"key_file"`
	ClientCAFile      string `mapstructure:"client_ca_file"`
	RequireClientCert bool   `mapstructure:"require_client_cert"`
}

// Enabled reports whether mqtt.tls names a certificate.
func (t MQTTTLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// MQTTWS is mqtt.ws: MQTT over WebSocket.
type MQTTWS struct {
	Listen         string   `mapstructure:"listen"`     // ws://; "": off
	TLSListen      string   `mapstructure:"tls_listen"` // wss://, with mqtt.tls's certificate; "": off
	AllowedOrigins []string `mapstructure:"allowed_origins"`
}

// HTTPTLS is http.tls: HTTPS on http.listen.
type HTTPTLS struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// listenPolicy applies the safe default to one listen address, like Mosquitto 2: with
// authentication, addr is bound as written; without, only with allowAnonymous is it
// bound as written (with a warning when reachable from the network); otherwise an
// address with no host binds loopback only, and an explicit network address is an
// error. It returns the address to bind and a message to log, if any.
func listenPolicy(key, addr, authKey string, authed, allowAnonymous bool) (bind, warn string, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", "", fmt.Errorf("%w: want host:port or :port", ErrInvalidAddress)
	}
	anonKey := key[:len(key)-len(lastKey(key))] + "allow_anonymous"
	if isLoopback(host) || authed {
		return addr, "", nil
	}
	if allowAnonymous {
		return addr, fmt.Sprintf("%s %q is reachable from the network without authentication (%s): anyone who can reach it can read and write",
			key, addr, anonKey), nil
	}
	if host == "" {
		return net.JoinHostPort("127.0.0.1", port), fmt.Sprintf(
			"%s %q: no authentication is configured, so listening on loopback only; set %s, or %s: true on a trusted network, to accept remote clients",
			key, addr, authKey, anonKey), nil
	}
	return "", "", fmt.Errorf("%w: %q is reachable from the network but no authentication is configured: set %s, or %s: true on a trusted network",
		ErrInsecure, addr, authKey, anonKey)
}

// ErrInsecure is wrapped by the error for a network listener without authentication.
var ErrInsecure = errors.New("insecure listener")

func lastKey(key string) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '.' {
			return key[i+1:]
		}
	}
	return key
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// security is what the security settings open: files and TLS configurations.
type security struct {
	users   *auth.UsersFile
	tokens  *auth.TokensFile
	mqttTLS *tlsconf.Server
	httpTLS *tlsconf.Server
}

// openSecurity opens the users and tokens files and loads the certificates the
// configuration names; every problem is reported, with its key.
func (c *Config) openSecurity() (*security, error) {
	var s security
	var errs []error
	bad := func(key string, v any, err error) { errs = append(errs, &ConfigError{Field: key, Value: v, Err: err}) }
	var err error
	if f := c.MQTT.Auth.UsersFile; f != "" {
		if s.users, err = auth.OpenUsersFile(f); err != nil {
			bad("mqtt.auth.users_file", f, err)
		}
		if c.MQTT.AllowAnonymous {
			bad("mqtt.allow_anonymous", true, fmt.Errorf("%w: with mqtt.auth.users_file every client must log in", ErrInvalidChoice))
		}
	}
	if f := c.HTTP.Auth.TokensFile; f != "" {
		if s.tokens, err = auth.OpenTokensFile(f); err != nil {
			bad("http.auth.tokens_file", f, err)
		}
		if c.HTTP.AllowAnonymous {
			bad("http.allow_anonymous", true, fmt.Errorf("%w: with http.auth.tokens_file every request needs a token", ErrInvalidChoice))
		}
	}
	if t := c.MQTT.TLS; t.Enabled() || t.ClientCAFile != "" || t.RequireClientCert {
		if s.mqttTLS, err = tlsconf.Load(tlsconf.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile, RequireClientCert: t.RequireClientCert}); err != nil {
			bad("mqtt.tls", t.CertFile, err)
		}
	}
	if c.MQTT.WS.TLSListen != "" && !c.MQTT.TLS.Enabled() {
		bad("mqtt.ws.tls_listen", c.MQTT.WS.TLSListen, fmt.Errorf("%w: needs mqtt.tls.cert_file and key_file", ErrInvalidChoice))
	}
	if t := c.HTTP.TLS; t.CertFile != "" || t.KeyFile != "" {
		if s.httpTLS, err = tlsconf.Load(tlsconf.Files{CertFile: t.CertFile, KeyFile: t.KeyFile}); err != nil {
			bad("http.tls", t.CertFile, err)
		}
	}
	return &s, errors.Join(errs...)
}

// mqttListeners returns the MQTT listen addresses to bind, by key, after the safe
// default; messages to log go to log.
func (c *Config) listeners(log *slog.Logger) (map[string]string, error) {
	type l struct {
		key, addr, authKey string
		authed, anon       bool
	}
	mqttAuthed := c.MQTT.Auth.UsersFile != ""
	ls := []l{
		{"mqtt.listen", c.MQTT.Listen, "mqtt.auth.users_file", mqttAuthed, c.MQTT.AllowAnonymous},
		{"http.listen", c.HTTP.Listen, "http.auth.tokens_file", c.HTTP.Auth.TokensFile != "", c.HTTP.AllowAnonymous},
	}
	if c.MQTT.TLS.Enabled() {
		ls = append(ls, l{"mqtt.tls.listen", c.MQTT.TLS.Listen, "mqtt.auth.users_file", mqttAuthed, c.MQTT.AllowAnonymous})
	}
	if c.MQTT.WS.Listen != "" {
		ls = append(ls, l{"mqtt.ws.listen", c.MQTT.WS.Listen, "mqtt.auth.users_file", mqttAuthed, c.MQTT.AllowAnonymous})
	}
	if c.MQTT.WS.TLSListen != "" {
		ls = append(ls, l{"mqtt.ws.tls_listen", c.MQTT.WS.TLSListen, "mqtt.auth.users_file", mqttAuthed, c.MQTT.AllowAnonymous})
	}
	out := make(map[string]string, len(ls))
	var errs []error
	for _, x := range ls {
		bind, warn, err := listenPolicy(x.key, x.addr, x.authKey, x.authed, x.anon)
		if err != nil {
			errs = append(errs, &ConfigError{Field: x.key, Value: x.addr, Err: err})
			continue
		}
		if warn != "" && log != nil {
			log.Warn(warn)
		}
		out[x.key] = bind
	}
	return out, errors.Join(errs...)
}

// logAuth says at start which authentication each side uses.
func (c *Config) logAuth(log *slog.Logger, s *security) {
	switch {
	case s.users != nil:
		log.Info("mqtt authentication: users file", "file", s.users.Path(), "users", s.users.Users().Len())
	case c.MQTT.AllowAnonymous:
		log.Warn("mqtt authentication: none (mqtt.allow_anonymous): any client may connect, publish and subscribe")
	default:
		log.Info("mqtt authentication: none (set mqtt.auth.users_file); only loopback addresses are served")
	}
	switch {
	case s.tokens != nil:
		log.Info("http authentication: tokens file", "file", s.tokens.Path(), "tokens", s.tokens.Tokens().Len())
	case c.HTTP.AllowAnonymous:
		log.Warn("http authentication: none (http.allow_anonymous): anyone who can reach the API can read and write")
	default:
		log.Info("http authentication: none (set http.auth.tokens_file); only loopback addresses are served")
	}
}

// reloaders returns what SIGHUP re-reads.
func (s *security) reloaders() []func() error {
	var rs []func() error
	if s.users != nil {
		rs = append(rs, s.users.Reload)
	}
	if s.tokens != nil {
		rs = append(rs, s.tokens.Reload)
	}
	if s.mqttTLS != nil {
		rs = append(rs, s.mqttTLS.Reload)
	}
	if s.httpTLS != nil {
		rs = append(rs, s.httpTLS.Reload)
	}
	return rs
}

func tlsConfig(s *tlsconf.Server) *tls.Config {
	if s == nil {
		return nil
	}
	return s.Config()
}
