package wsman

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	mwinrm "github.com/masterzen/winrm"

	"github.com/ndrbot/ndrbot/config"
)

// URLDefaults are what an endpoint URL of one kind of target may leave out.
type URLDefaults struct {
	Path      string // when the URL has none, or just "/"
	HTTPPort  int
	HTTPSPort int
	Example   string // a well-formed URL, shown when the scheme is wrong
}

var (
	// WinRM is a plain WinRM listener (winrm targets).
	WinRM = URLDefaults{Path: "/wsman", HTTPPort: 5985, HTTPSPort: 5986, Example: "https://ex01:5986/wsman"}
	// Exchange is Exchange's remote PowerShell, which lives in IIS (80/443).
	Exchange = URLDefaults{Path: "/PowerShell", HTTPPort: 80, HTTPSPort: 443, Example: "https://ex01.contoso.example/PowerShell"}
	// JEA is a JEA endpoint on a WinRM listener (5985/5986).
	JEA = URLDefaults{Path: "/wsman", HTTPPort: 5985, HTTPSPort: 5986, Example: "https://ex01.contoso.example/PowerShell"}
)

// URL is a parsed endpoint URL.
type URL struct {
	Host  string // as configured, without brackets
	Port  int
	HTTPS bool
	Path  string
	URL   string // scheme://host:port/path, port and path filled in
}

// ParseURL checks one configured endpoint URL and fills in what d supplies. Its
// errors never repeat the URL, which might carry a password.
func ParseURL(raw string, d URLDefaults) (*URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, password and all
		}
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("want a URL like %s (scheme http or https)", d.Example)
	}
	if u.User != nil {
		return nil, errors.New("credentials do not belong in the URL; use username and password_file")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("query and fragment are not allowed")
	}
	out := &URL{Host: u.Hostname(), HTTPS: scheme == "https", Port: d.HTTPPort, Path: u.Path}
	if out.Host == "" {
		return nil, errors.New("no host")
	}
	if out.HTTPS {
		out.Port = d.HTTPSPort
	}
	if p := u.Port(); p != "" {
		if out.Port, err = strconv.Atoi(p); err != nil || out.Port < 1 || out.Port > 65535 {
			return nil, fmt.Errorf("bad port %q", p)
		}
	}
	if out.Path == "" || out.Path == "/" {
		out.Path = d.Path
	}
	out.URL = scheme + "://" + net.JoinHostPort(out.Host, strconv.Itoa(out.Port)) + out.Path
	return out, nil
}

// Endpoint is the library's view of u, with a header timeout HeaderSlack longer
// than the OperationTimeout.
func (u *URL) Endpoint(opTimeout time.Duration) *mwinrm.Endpoint {
	ep := &mwinrm.Endpoint{Host: u.Host, Port: u.Port, HTTPS: u.HTTPS, Timeout: opTimeout + HeaderSlack}
	if strings.Contains(u.Host, ":") {
		ep.Host = "[" + u.Host + "]" // the library formats host:port itself
	}
	return ep
}

// Redact names an endpoint in an error without a password someone put in its URL.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return strconv.Quote(u.Redacted())
}

// Limits are a target's max_concurrency, operation_timeout and max_output_bytes.
type Limits struct {
	MaxConcurrency   int
	OperationTimeout time.Duration
	MaxOutputBytes   int
}

// Resolve checks t's limits and fills in the ones left empty from d.
func (d Limits) Resolve(t config.Target) (Limits, error) {
	l := Limits{MaxConcurrency: t.MaxConcurrency, OperationTimeout: t.OperationTimeout, MaxOutputBytes: t.MaxOutputBytes}
	switch {
	case l.MaxConcurrency < 0:
		return l, fmt.Errorf("max_concurrency: %d is negative", l.MaxConcurrency)
	case l.MaxConcurrency == 0:
		l.MaxConcurrency = d.MaxConcurrency
	}
	switch {
	case l.OperationTimeout < 0:
		return l, fmt.Errorf("operation_timeout: %s is negative", l.OperationTimeout)
	case l.OperationTimeout == 0:
		l.OperationTimeout = d.OperationTimeout
	case l.OperationTimeout < time.Second:
		return l, fmt.Errorf("operation_timeout: %s is below WinRM's minimum of 1s", l.OperationTimeout)
	}
	switch {
	case l.MaxOutputBytes < 0:
		return l, fmt.Errorf("max_output_bytes: %d is negative", l.MaxOutputBytes)
	case l.MaxOutputBytes == 0:
		l.MaxOutputBytes = d.MaxOutputBytes
	}
	return l, nil
}

// Timeout is the OperationTimeout as WS-Man writes it, e.g. "PT60.000S".
func Timeout(d time.Duration) string { return fmt.Sprintf("PT%.3fS", d.Seconds()) }

// CheckCredentials requires a username and a password or password_file.
func CheckCredentials(t config.Target) error {
	if t.Username == "" {
		return errors.New("username: required")
	}
	if t.Password == "" && t.PasswordFile == "" {
		return errors.New("password or password_file: required")
	}
	return nil
}

// Password returns a function that reads t's password, password_file anew each
// time, so a rotated file is picked up. Its errors name the file, never the
// content.
func Password(t config.Target) func() (config.Secret, error) {
	password, file := t.Password, t.PasswordFile
	return func() (config.Secret, error) {
		pw, err := config.ResolveSecret(password, file)
		if err != nil {
			return "", fmt.Errorf("password_file: %w", err)
		}
		return config.Secret(pw), nil
	}
}
