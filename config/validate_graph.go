package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
)

// guidRE matches a GUID as Entra ID writes tenant and application IDs.
var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// graph checks a graph target: who it signs in as (tenant, application, exactly one
// credential) and where it talks to (cloud, graph_url, authority_url).
func (v *validator) graph(prefix string, t Target) {
	if len(t.Endpoints) > 0 {
		v.add(prefix+".endpoints", "not used by kind graph: cloud (%s) or graph_url says where Graph is",
			strings.Join(GraphClouds(), "|"))
	}
	// With no app registration at all (the default graph target) the identity is
	// not configured yet: RequireApp speaks when a playbook uses the target.
	if !t.AppUnset() {
		v.graphIdentity(prefix, t)
	}
	v.graphEndpoints(prefix, t)
}

// graphIdentity checks who a graph target signs in as: tenant, application and
// exactly one credential.
func (v *validator) graphIdentity(prefix string, t Target) {
	switch tenant := t.TenantID; {
	case tenant == "":
		v.add(prefix+".tenant_id", "required: the directory (tenant) ID, a GUID, or a verified domain such as contoso.onmicrosoft.com")
	case slices.Contains([]string{"common", "organizations", "consumers"}, strings.ToLower(tenant)):
		v.add(prefix+".tenant_id", "%q is a multi-tenant alias; client credentials need the tenant's own ID or domain", tenant)
	case !guidRE.MatchString(tenant) && !(validHostname(tenant) && strings.Contains(strings.Trim(tenant, "."), ".")):
		v.add(prefix+".tenant_id", "%q is neither a GUID nor a domain name", tenant)
	}
	switch {
	case t.ClientID == "":
		v.add(prefix+".client_id", "required: the application (client) ID of the app registration, a GUID")
	case !guidRE.MatchString(t.ClientID):
		v.add(prefix+".client_id", "%q is not a GUID (the application (client) ID from the app registration's overview)", t.ClientID)
	}

	hasSecret := t.ClientSecret != "" || t.ClientSecretFile != ""
	hasCert := t.CertificateFile != ""
	switch {
	case !hasSecret && !hasCert:
		v.add(prefix+".client_secret", "a credential is required: set %s, %s.client_secret_file or %s.certificate_file",
			EnvName(prefix+".client_secret"), prefix, prefix)
	case hasSecret && hasCert:
		v.add(prefix+".certificate_file", "set together with client_secret: configure exactly one credential")
	case hasCert:
		v.certificate(prefix, t)
	}
	if !hasCert && (t.CertificatePassword != "" || t.CertificatePasswordFile != "") {
		v.add(prefix+".certificate_password", "only applies to certificate_file, which is not set")
	}
}

// graphEndpoints checks where a graph target talks to: cloud, graph_url, authority_url.
func (v *validator) graphEndpoints(prefix string, t Target) {
	if t.Cloud != "" && !slices.Contains(GraphClouds(), t.Cloud) {
		v.add(prefix+".cloud", "%q must be one of %s", t.Cloud, strings.Join(GraphClouds(), ", "))
	}
	if t.GraphURL != "" {
		if msg := checkGraphURL(t.GraphURL, false); msg != "" {
			v.add(prefix+".graph_url", "%s", msg)
		}
	}
	if t.AuthorityURL != "" {
		if msg := checkGraphURL(t.AuthorityURL, true); msg != "" {
			v.add(prefix+".authority_url", "%s", msg)
		}
	}
}

// certificate checks that certificate_file holds a PEM certificate and a private key,
// and that an encrypted key comes with a password. It never reports the key itself.
func (v *validator) certificate(prefix string, t Target) {
	key := prefix + ".certificate_file"
	b, err := os.ReadFile(t.CertificateFile)
	if err != nil {
		v.add(key, "%v", err)
		return
	}
	var certs, keys int
	encrypted, legacy, rsaCert := false, false, true
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			certs++
			if c, err := x509.ParseCertificate(block.Bytes); err == nil && certs == 1 && c.PublicKeyAlgorithm != x509.RSA {
				rsaCert = false
			}
		case strings.HasSuffix(block.Type, "PRIVATE KEY"):
			keys++
			encrypted = encrypted || block.Type == "ENCRYPTED PRIVATE KEY"
			legacy = legacy || block.Headers["Proc-Type"] == "4,ENCRYPTED"
		}
	}
	switch {
	case certs == 0 && keys == 0:
		v.add(key, "%s holds no PEM certificate or key (want the certificate and its private key, PEM-encoded, in one file)", t.CertificateFile)
	case certs == 0:
		v.add(key, "%s holds a private key but no certificate: append the certificate (PEM)", t.CertificateFile)
	case keys == 0:
		v.add(key, "%s holds a certificate but no private key: the bot signs its token requests with the key", t.CertificateFile)
	case legacy:
		v.add(key, "%s uses legacy PEM key encryption, which the bot cannot read: convert the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc`", t.CertificateFile)
	case !rsaCert:
		v.add(key, "%s holds a non-RSA certificate: Microsoft Entra ID accepts RSA certificates only", t.CertificateFile)
	case encrypted && t.CertificatePassword == "" && t.CertificatePasswordFile == "":
		v.add(prefix+".certificate_password", "the private key in %s is encrypted: set %s or %s.certificate_password_file",
			t.CertificateFile, EnvName(prefix+".certificate_password"), prefix)
	}
}

// checkGraphURL returns what is wrong with a graph_url or authority_url, or "".
// Both must be https; graph_url may be plain http on a loopback address (a local
// proxy or a test). The authority must be https even there: the identity library
// refuses anything else.
func checkGraphURL(raw string, authority bool) string {
	example := "https://graph.microsoft.us"
	if authority {
		example = "https://login.microsoftonline.us"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Sprintf("%q is not an https URL (e.g. %s)", raw, example)
	}
	if u.User != nil {
		return fmt.Sprintf("%q carries credentials: use client_secret or certificate_file", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Sprintf("%q must not have a query or fragment", raw)
	}
	if !validHost(u.Hostname()) {
		return fmt.Sprintf("%q: %q is not a host name or IP address", raw, u.Hostname())
	}
	if p := u.Port(); p != "" && !validPort(p) {
		return fmt.Sprintf("%q: port %s out of range 1..65535", raw, p)
	}
	if u.Scheme == "http" {
		if authority {
			return fmt.Sprintf("%q must be https: the identity library only talks to an https authority", raw)
		}
		if !isLoopback(u.Hostname()) {
			return fmt.Sprintf("%q must be https (plain http only to localhost): the bearer token travels with every request", raw)
		}
	}
	if authority && strings.Trim(u.Path, "/") != "" {
		return fmt.Sprintf("%q: give the authority host only (e.g. %s); the tenant is added from tenant_id", raw, example)
	}
	return ""
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
