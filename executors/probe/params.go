package probe

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// hostnameRE matches a DNS name: dot-separated labels of letters, digits, hyphens
// (not at either end) and underscores (SRV/DMARC-style names), optional final dot.
// Length limits are checked separately. Nothing else ever reaches a dial or a query.
var hostnameRE = lazyre.New(`^(?i)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$`)

func validHostname(s string) bool {
	return len(s) > 0 && len(s) <= 254 && hostnameRE().MatchString(s)
}

// canonicalName lower-cases a valid DNS name and drops the final dot.
func canonicalName(s string) (string, error) {
	if !validHostname(s) || s == "." {
		return "", fmt.Errorf("%q is not a valid domain or host name: %w", s, incident.ErrInvalidInput)
	}
	return strings.ToLower(strings.TrimSuffix(s, ".")), nil
}

func validateNames(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		c, err := canonicalName(n)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// endpoint is a parsed probe destination: a validated host name or IP and a port.
type endpoint struct {
	host string     // lower-case name or IP text, no brackets
	ip   netip.Addr // valid when host is an IP literal
	port int
}

// key identifies the destination for rate limits and connection caps.
func (ep endpoint) key() string { return net.JoinHostPort(ep.host, strconv.Itoa(ep.port)) }

// parseEndpoint accepts "host", "host:port", "1.2.3.4", "1.2.3.4:25", "[2001:db8::1]:25"
// and a bare IPv6 address.
func parseEndpoint(raw string, defaultPort int) (endpoint, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return endpoint{}, fmt.Errorf("empty endpoint: %w", incident.ErrInvalidInput)
	}
	host, portText := s, ""
	if ip, err := netip.ParseAddr(s); err == nil { // bare IPv4 or IPv6
		return ipEndpoint(ip, defaultPort)
	}
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, portText = h, p
	} else if strings.ContainsAny(s, ":[]") {
		return endpoint{}, fmt.Errorf("endpoint %q: %w: %w", raw, err, incident.ErrInvalidInput)
	}
	port := defaultPort
	if portText != "" {
		p, err := strconv.Atoi(portText)
		if err != nil || p < 1 || p > 65535 {
			return endpoint{}, fmt.Errorf("endpoint %q: port %q out of range: %w", raw, portText, incident.ErrInvalidInput)
		}
		port = p
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ipEndpoint(ip, port)
	}
	name, err := canonicalName(host)
	if err != nil {
		return endpoint{}, err
	}
	return endpoint{host: name, port: port}, nil
}

func ipEndpoint(ip netip.Addr, port int) (endpoint, error) {
	if ip.Zone() != "" {
		return endpoint{}, fmt.Errorf("IPv6 zone in %q is not supported: %w", ip, incident.ErrInvalidInput)
	}
	ip = ip.Unmap()
	return endpoint{host: ip.String(), ip: ip, port: port}, nil
}

// stringsParam reads a parameter that may be one string (comma or space separated),
// a []string or a []any of strings (as decoded from JSON or YAML).
func stringsParam(params map[string]any, key string) ([]string, error) {
	v, ok := params[key]
	if !ok || v == nil {
		return nil, nil
	}
	var raw []string
	switch x := v.(type) {
	case string:
		raw = strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
	case []string:
		raw = x
	case []any:
		for i, item := range x {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("parameter %q[%d] is %T, want a string: %w", key, i, item, incident.ErrInvalidInput)
			}
			raw = append(raw, s)
		}
	default:
		return nil, fmt.Errorf("parameter %q is %T, want a string or a list of strings: %w", key, v, incident.ErrInvalidInput)
	}
	out := make([]string, 0, len(raw))
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// domainParam reads and validates a required domain parameter.
func domainParam(params map[string]any, key string) (string, error) {
	v, ok := params[key]
	if !ok || v == nil {
		return "", fmt.Errorf("missing parameter %q: %w", key, incident.ErrInvalidInput)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("parameter %q is %T, want a domain name: %w", key, v, incident.ErrInvalidInput)
	}
	// Accept an e-mail address's domain part too: operators paste addresses.
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		s = s[at+1:]
	}
	d, err := canonicalName(s)
	if err != nil {
		return "", fmt.Errorf("parameter %q: %w", key, err)
	}
	if !strings.Contains(d, ".") {
		return "", fmt.Errorf("parameter %q: %q is not a fully qualified domain: %w", key, d, incident.ErrInvalidInput)
	}
	return d, nil
}

// systemNameserver returns the first nameserver in a resolv.conf, or 127.0.0.1:53 as
// the C resolver does when there is none.
func systemNameserver(path string) string {
	const fallback = "127.0.0.1:53"
	f, err := os.Open(path)
	if err != nil {
		return fallback
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		ip, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		return net.JoinHostPort(ip.String(), "53")
	}
	return fallback
}

// normalizeDNSServer validates "ip", "ip:port" or "[v6]:port" (a name would need a
// resolver to find the resolver).
func normalizeDNSServer(s string) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an IP address with optional port: %w", s, err)
	}
	if ap.Port() == 0 {
		return "", fmt.Errorf("%q: port 0", s)
	}
	return ap.String(), nil
}
