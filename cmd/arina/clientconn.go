package main

// The connection options of the client commands (pub, bench, counts, watch, health),
// after mosquitto_pub and curl, and the one place that turns them into an MQTT
// connection or an HTTP client.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/eclipse/paho.golang/paho"
	"github.com/spf13/pflag"

	"github.com/arina-dev/arina/bench/loadgen"
	"github.com/arina-dev/arina/internal/config"
	"github.com/arina-dev/arina/internal/mqttdial"
)

// Environment variables of the client commands: secrets stay off the command line,
// where every user of the machine can read them (ps, /proc/<pid>/cmdline).
const (
	envPassword = "ARINA_PASSWORD"
	envToken    = "ARINA_TOKEN"
)

// tlsFlags are --cafile, --cert, --key and --insecure.
type tlsFlags struct {
	caFile, cert, key string
	insecure          bool
	// shared: MQTT and HTTP use the same options (bench), so one plain side is no
	// error; the command checks that some side uses them.
	shared bool
	warned bool // the --insecure warning was written
}

func addTLSFlags(fs *pflag.FlagSet, shared bool) *tlsFlags {
	f := &tlsFlags{shared: shared}
	ca := "PEM file of the CA certificate(s) to trust for the server's certificate (default: the system's); with a bare host:port, also means TLS"
	if shared {
		ca = "PEM file of the CA certificate(s) to trust for the broker's and the API's certificates (default: the system's); TLS needs mqtts://, wss://, https://"
	}
	fs.StringVar(&f.caFile, "cafile", "", ca)
	fs.StringVar(&f.cert, "cert", "", "PEM client certificate, for brokers that want one (with --key)")
	fs.StringVar(&f.key, "key", "", "PEM private key of --cert")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the server's certificate (testing only: anyone on the path can then read the password and the data)")
	return f
}

// given reports whether a TLS option was given: a bare host:port then means TLS, as
// for mosquitto_pub.
func (f *tlsFlags) given() bool {
	return f.caFile != "" || f.cert != "" || f.insecure
}

// tlsBare reports whether a bare host:port means TLS: when a TLS option is given, as
// for mosquitto_pub, unless the options are shared by MQTT and HTTP (bench), where
// the scheme must say it (mqtts://, wss://, https://).
func (f *tlsFlags) tlsBare() bool { return f.given() && !f.shared }

// config builds the client TLS configuration. pinFile, when set and neither --cafile
// nor --insecure is given, is the certificate file of this configuration's own
// listener: the server is then trusted if it presents exactly that certificate,
// whatever name it was reached by (127.0.0.1 for a certificate made out to the site's
// name), as a health check on the host itself needs.
func (f *tlsFlags) config(pinFile string, warn io.Writer) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caFile != "" {
		data, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--cafile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--cafile %s: no PEM certificate in it", f.caFile)
		}
		c.RootCAs = pool
	}
	if f.cert != "" || f.key != "" {
		if f.cert == "" || f.key == "" {
			return nil, errors.New("--cert and --key go together: give both")
		}
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--cert %s, --key %s: %w", f.cert, f.key, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	switch {
	case f.insecure:
		c.InsecureSkipVerify = true
		if f.warned {
			break
		}
		f.warned = true
		fmt.Fprintln(warn, "arina: warning: --insecure: the server's certificate is not verified; anyone on the path can impersonate it and read the password and the data")
	case f.caFile == "" && pinFile != "":
		pin, err := leafOf(pinFile)
		if err != nil {
			return nil, fmt.Errorf("reading this configuration's own certificate, to trust it: %w (or give the server's CA with --cafile)", err)
		}
		c.InsecureSkipVerify = true // replaced by the exact comparison below
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pin) {
				return fmt.Errorf("the server's certificate is not the one in %s (this configuration's own); give its CA with --cafile", pinFile)
			}
			return nil
		}
	}
	return c, nil
}

// leafOf returns the DER of the first certificate in a PEM file.
func leafOf(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%s: no PEM certificate in it", path)
		}
		if b.Type == "CERTIFICATE" {
			return b.Bytes, nil
		}
	}
}

// mqttFlags are the MQTT login options of pub and bench.
type mqttFlags struct {
	broker                           string
	username, password, passwordFile string
	clientID                         string
	tls                              *tlsFlags
}

func addMQTTFlags(fs *pflag.FlagSet, t *tlsFlags, clientIDUsage string) *mqttFlags {
	f := &mqttFlags{tls: t}
	usage := "MQTT broker: host:port, or a URL mqtt://, mqtts://, ws://, wss:// (default: mqtt.listen of the configuration; mqtt.tls.listen with a TLS option)"
	if t.shared {
		usage = "MQTT broker: host:port (plain MQTT), or a URL mqtt://, mqtts://, ws://, wss:// (default: mqtt.listen of the configuration)"
	}
	fs.StringVar(&f.broker, "broker", "", usage)
	fs.StringVarP(&f.username, "username", "u", "", "MQTT username")
	fs.StringVar(&f.password, "password", "", "MQTT password (visible to every user of this machine: prefer --password-file or "+envPassword+")")
	fs.StringVar(&f.passwordFile, "password-file", "", "file whose first line is the MQTT password (default: $"+envPassword+")")
	fs.StringVar(&f.clientID, "client-id", "", clientIDUsage)
	return f
}

// mqttLogin is what connecting to a broker takes, resolved from the options, the
// environment and the configuration.
type mqttLogin struct {
	target   mqttdial.Target
	tls      *tls.Config // nil unless target.TLS()
	username string
	password []byte
}

// resolve checks the options and reads the password and the certificates.
func (f *mqttFlags) resolve(cfg config.Config, getenv func(string) string, warn io.Writer) (*mqttLogin, error) {
	l := &mqttLogin{username: f.username}
	addr, pinFile := f.broker, ""
	if addr == "" {
		addr = clientAddr(cfg.MQTT.Listen)
		if f.tls.tlsBare() {
			addr, pinFile = clientAddr(cfg.MQTT.TLS.Listen), cfg.MQTT.TLS.CertFile
		}
	}
	t, err := mqttdial.Parse(addr, f.tls.tlsBare())
	if err != nil {
		return nil, fmt.Errorf("--broker: %w", err)
	}
	l.target = t
	if !t.TLS() && f.tls.given() && !f.tls.shared {
		return nil, fmt.Errorf("--broker %s is plain MQTT, so --cafile, --cert, --key and --insecure would not be used: use mqtts:// or wss://", t)
	}
	if t.TLS() {
		if l.tls, err = f.tls.config(pinFile, warn); err != nil {
			return nil, err
		}
	}
	pw, err := secret(f.password, f.passwordFile, "--password", "--password-file", envPassword, getenv)
	if err != nil {
		return nil, err
	}
	switch {
	case pw != nil && f.username == "" && (f.password != "" || f.passwordFile != ""):
		return nil, errors.New("a password needs a username: give -u/--username")
	case f.username != "":
		l.password = pw
	}
	return l, nil
}

// secret returns the value of a --password-like option: the flag, else the first line
// of the file, else the environment variable; nil when none is set.
func secret(flagVal, file, flagName, fileFlag, env string, getenv func(string) string) ([]byte, error) {
	switch {
	case flagVal != "" && file != "":
		return nil, fmt.Errorf("%s and %s: give one", flagName, fileFlag)
	case flagVal != "":
		return []byte(flagVal), nil
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fileFlag, err)
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return nil, fmt.Errorf("%s %s: the first line is empty", fileFlag, file)
		}
		return line, nil
	case getenv(env) != "":
		return []byte(getenv(env)), nil
	}
	return nil, nil
}

// connect5 opens an MQTT 5 session (clean start) with the login; cfg is the paho
// configuration without its Conn. Every failure is explained: a refused login names
// the options that fix it, a TLS failure says which certificate was not trusted.
func (l *mqttLogin) connect5(ctx context.Context, cfg paho.ClientConfig, clientID string) (*paho.Client, error) {
	nc, err := mqttdial.Dial(ctx, l.target, l.tls)
	if err != nil {
		return nil, l.dialError(err)
	}
	cfg.Conn = nc
	c := paho.NewClient(cfg)
	cp := &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}
	if l.username != "" {
		cp.Username, cp.UsernameFlag = l.username, true
	}
	if l.password != nil {
		cp.Password, cp.PasswordFlag = l.password, true
	}
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		if ca != nil {
			return nil, fmt.Errorf("connecting to %s: %s", l.target, l.refusal(ca.ReasonCode, ca.Properties))
		}
		return nil, fmt.Errorf("connecting to %s: %w%s%s", l.target, err, l.closedHint(err), timeoutHint(err, l.target.Host))
	}
	return c, nil
}

// refusal explains a CONNACK reason code.
func (l *mqttLogin) refusal(code byte, props *paho.ConnackProperties) string {
	reason, hint := l.loginHint(code)
	if props != nil && props.ReasonString != "" {
		reason = props.ReasonString
	}
	s := fmt.Sprintf("refused with reason %#x", code)
	if reason != "" {
		s += " (" + reason + ")"
	}
	if hint != "" {
		s += ": " + hint
	}
	return s
}

// loginHint names an MQTT 5 CONNACK reason code and says which option fixes it.
func (l *mqttLogin) loginHint(code byte) (reason, hint string) {
	switch code {
	case 0x86:
		return "bad user name or password", "check -u/--username and the password (--password-file or " + envPassword + ")"
	case 0x87, 0x8c:
		switch {
		case l.username == "" && (l.tls == nil || len(l.tls.Certificates) == 0):
			hint = "the broker wants a login: give -u/--username and a password (--password-file or " + envPassword +
				"), or a client certificate (--cert, --key)"
		case l.username == "":
			hint = "the broker did not take the client certificate (--cert) as a login: it must be signed by a CA the broker trusts for clients and name a user"
		default:
			hint = "the broker refused this login"
		}
		return "not authorized", hint
	case 0x85:
		return "client identifier not valid", "choose another with --client-id"
	}
	return "", ""
}

// explain adds to an error of the load generator what the user can do about it: a
// refused login (either protocol) or a TLS failure.
func (l *mqttLogin) explain(err error) error {
	var ce *loadgen.ConnackError
	if errors.As(err, &ce) {
		code := ce.Code
		if ce.Protocol == loadgen.MQTT311 { // return codes, as MQTT 5 reason codes
			code = map[byte]byte{2: 0x85, 4: 0x86, 5: 0x87}[ce.Code]
		}
		if reason, hint := l.loginHint(code); hint != "" {
			return fmt.Errorf("%w (%s): %s", err, reason, hint)
		}
		return err
	}
	if h := tlsHint(err, l.target.Host) + timeoutHint(err, l.target.Host); h != "" {
		return fmt.Errorf("%w%s", err, h)
	}
	return err
}

// dialError explains a failed dial or TLS handshake.
func (l *mqttLogin) dialError(err error) error {
	return fmt.Errorf("connecting to %s: %w%s%s", l.target, err, tlsHint(err, l.target.Host), timeoutHint(err, l.target.Host))
}

// closedHint explains a connection closed before CONNACK: a plain client on a TLS
// port looks like this.
func (l *mqttLogin) closedHint(err error) string {
	if l.target.TLS() || !(errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset by peer")) {
		return ""
	}
	return fmt.Sprintf(" (the broker closed the connection before answering: if %s is a TLS port, use mqtts://%s)", l.target.Host, l.target.Host)
}

// timeoutHint explains an error that is only a deadline: nothing answered.
func timeoutHint(err error, host string) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf(" (no answer from %s within --timeout: is the address right, and reachable?)", host)
	}
	return ""
}

// tlsHint explains a TLS failure with the options that fix it.
func tlsHint(err error, host string) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var re tls.RecordHeaderError
	var te *mqttdial.TLSError
	switch {
	case errors.As(err, &ua):
		return ": the server's certificate is not signed by a CA this client trusts: give that CA's certificate with --cafile (or skip verification with --insecure, for tests only)"
	case errors.As(err, &he):
		return fmt.Sprintf(": the server's certificate is not valid for %q: connect by a name it holds (%s)", he.Host, certNames(he.Certificate))
	case errors.As(err, &ci):
		return ": the server's certificate is not valid (expired, or not for a server)"
	case errors.As(err, &re):
		return fmt.Sprintf(": %s does not speak TLS: use mqtt:// or ws:// (http:// for the API)", host)
	case errors.As(err, &te) && (errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset by peer")):
		return fmt.Sprintf(": %s closed the connection during the TLS handshake: is it a TLS port? (use mqtt:// for a plain one)", host)
	}
	return ""
}

func certNames(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = append(names, c.Subject.CommonName)
	}
	return strings.Join(names, ", ")
}

// apiFlags are the HTTP API options of counts, watch, health and bench.
type apiFlags struct {
	token     string
	withToken bool // the command sends a token (not health: its routes are open)
	tls       *tlsFlags
}

func addAPIFlags(fs *pflag.FlagSet, t *tlsFlags, withToken bool) *apiFlags {
	f := &apiFlags{tls: t, withToken: withToken}
	if withToken {
		fs.StringVar(&f.token, "token", "", "bearer token for the HTTP API (default: $"+envToken+"; on the command line it is visible to every user of this machine)")
	}
	return f
}

// apiClient is an HTTP client of an Arina API.
type apiClient struct {
	base  string // scheme://host:port, no trailing slash
	token string
	tls   *tls.Config // https:// only
	http  *http.Client
}

// client resolves the API's URL (server: host:port or URL; "" for the configuration's
// http.listen) and builds its client. A bare host:port is https:// with a TLS option,
// or when it is the configuration's own listener and http.tls is on.
func (f *apiFlags) client(server string, cfg config.Config, getenv func(string) string, warn io.Writer) (*apiClient, error) {
	a := &apiClient{token: f.token}
	if a.token == "" && f.withToken {
		a.token = getenv(envToken)
	}
	pinFile := ""
	own := server == ""
	if own {
		server = clientAddr(cfg.HTTP.Listen)
		if cfg.HTTP.TLS.CertFile != "" {
			pinFile = cfg.HTTP.TLS.CertFile
		}
	}
	if u, err := url.Parse(server); err == nil && u.Scheme != "" && u.Host != "" && strings.Contains(server, "://") {
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("%s: want http:// or https://", server)
		}
		a.base = strings.TrimRight(server, "/")
	} else {
		scheme := "http"
		if f.tls.tlsBare() || pinFile != "" {
			scheme = "https"
		}
		a.base = scheme + "://" + server
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if strings.HasPrefix(a.base, "https://") {
		conf, err := f.tls.config(pinFile, warn)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig, a.tls = conf, conf
	} else if f.tls.given() && !f.tls.shared {
		return nil, fmt.Errorf("%s is plain HTTP, so --cafile, --cert, --key and --insecure would not be used: use https://", a.base)
	}
	a.http = &http.Client{Transport: tr}
	return a, nil
}

// request builds a GET of path (with its query) carrying the token.
func (a *apiClient) request(ctx context.Context, path string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	return req, nil
}

// do sends req; a transport error is explained (TLS, plain HTTP on a TLS port).
func (a *apiClient) do(req *http.Request) (*http.Response, error) {
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w%s%s", err, tlsHint(err, req.URL.Host), timeoutHint(err, req.URL.Host))
	}
	return resp, nil
}

// get GETs path and returns the response (its body read, at most limit bytes, and
// closed) and the body.
func (a *apiClient) get(ctx context.Context, path string, limit int64) (*http.Response, []byte, error) {
	req, err := a.request(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	resp, err := a.do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer of %s: %w", req.URL, err)
	}
	return resp, body, nil
}

// statusError explains a status other than the one wanted: a missing or refused token,
// a token without the scope, plain HTTP sent to HTTPS.
func (a *apiClient) statusError(resp *http.Response, body []byte) error {
	msg := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusUnauthorized && a.token == "":
		return fmt.Errorf("%s: %s: the API wants a token: give one with a read scope in %s (or --token)", a.base, resp.Status, envToken)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%s: %s: the API refused the token (%s or --token): %s", a.base, resp.Status, envToken, msg)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: %s: the token lacks the scope this needs (read): %s", a.base, resp.Status, msg)
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(msg, "HTTP request to an HTTPS server"):
		return fmt.Errorf("%s: %s: the server speaks HTTPS: use https:// (with --cafile for its CA)", a.base, resp.Status)
	}
	return fmt.Errorf("%s: %s: %s", a.base, resp.Status, msg)
}

// clientAddr returns the address a local client should dial to reach a listen address.
func clientAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
