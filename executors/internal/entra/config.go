package entra

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// AppKeys are the target keys of an app registration, which the graph and exo
// kinds both read.
func AppKeys() []string {
	return []string{"tenant_id", "client_id", "client_secret", "client_secret_file", "certificate_file",
		"certificate_password", "certificate_password_file", "cloud", "authority_url",
		"ca_file", "insecure_skip_verify", "timeout"}
}

// guidRE matches a GUID as Entra ID writes tenant and application IDs.
var guidRE = lazyre.New(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// CheckIdentity checks who a graph or exo target signs in as: tenant,
// application and exactly one credential. A target with no app registration at
// all (config.Target.AppUnset) is not configured yet and is not checked here:
// RequireApp speaks when a playbook uses it.
func CheckIdentity(prefix string, t config.Target, report config.Report) {
	switch tenant := t.TenantID; {
	case tenant == "":
		report(prefix+".tenant_id", "required: the directory (tenant) ID, a GUID, or a verified domain such as contoso.onmicrosoft.com")
	case slices.Contains([]string{"common", "organizations", "consumers"}, strings.ToLower(tenant)):
		report(prefix+".tenant_id", "%q is a multi-tenant alias; client credentials need the tenant's own ID or domain", tenant)
	case !guidRE().MatchString(tenant) && !(config.ValidHostname(tenant) && strings.Contains(strings.Trim(tenant, "."), ".")):
		report(prefix+".tenant_id", "%q is neither a GUID nor a domain name", tenant)
	}
	switch {
	case t.ClientID == "":
		report(prefix+".client_id", "required: the application (client) ID of the app registration, a GUID")
	case !guidRE().MatchString(t.ClientID):
		report(prefix+".client_id", "%q is not a GUID (the application (client) ID from the app registration's overview)", t.ClientID)
	}

	hasSecret := t.ClientSecret != "" || t.ClientSecretFile != ""
	hasCert := t.CertificateFile != ""
	switch {
	case !hasSecret && !hasCert:
		report(prefix+".client_secret", "a credential is required: set %s, %s.client_secret_file or %s.certificate_file",
			config.EnvName(prefix+".client_secret"), prefix, prefix)
	case hasSecret && hasCert:
		report(prefix+".certificate_file", "set together with client_secret: configure exactly one credential")
	case hasCert:
		checkCertificate(prefix, t, report)
	}
	if !hasCert && (t.CertificatePassword != "" || t.CertificatePasswordFile != "") {
		report(prefix+".certificate_password", "only applies to certificate_file, which is not set")
	}
}

// CheckEndpoints checks where a graph or exo target talks to: cloud,
// graph_url, authority_url.
func CheckEndpoints(prefix string, t config.Target, report config.Report) {
	if t.Cloud != "" && !slices.Contains(config.GraphClouds(), t.Cloud) {
		report(prefix+".cloud", "%q must be one of %s", t.Cloud, strings.Join(config.GraphClouds(), ", "))
	}
	if t.GraphURL != "" {
		if msg := CheckURL(t.GraphURL, false); msg != "" {
			report(prefix+".graph_url", "%s", msg)
		}
	}
	if t.AuthorityURL != "" {
		if msg := CheckURL(t.AuthorityURL, true); msg != "" {
			report(prefix+".authority_url", "%s", msg)
		}
	}
}

// checkCertificate checks that certificate_file holds a PEM certificate and a private key,
// and that an encrypted key comes with a password. It never reports the key itself.
func checkCertificate(prefix string, t config.Target, report config.Report) {
	key := prefix + ".certificate_file"
	b, err := os.ReadFile(t.CertificateFile)
	if err != nil {
		report(key, "%v", err)
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
		report(key, "%s holds no PEM certificate or key (want the certificate and its private key, PEM-encoded, in one file)", t.CertificateFile)
	case certs == 0:
		report(key, "%s holds a private key but no certificate: append the certificate (PEM)", t.CertificateFile)
	case keys == 0:
		report(key, "%s holds a certificate but no private key: the bot signs its token requests with the key", t.CertificateFile)
	case legacy:
		report(key, "%s uses legacy PEM key encryption, which the bot cannot read: convert the key with `openssl pkcs8 -topk8 -v2 aes-256-cbc`", t.CertificateFile)
	case !rsaCert:
		report(key, "%s holds a non-RSA certificate: Microsoft Entra ID accepts RSA certificates only", t.CertificateFile)
	case encrypted && t.CertificatePassword == "" && t.CertificatePasswordFile == "":
		report(prefix+".certificate_password", "the private key in %s is encrypted: set %s or %s.certificate_password_file",
			t.CertificateFile, config.EnvName(prefix+".certificate_password"), prefix)
	}
}

// CheckURL returns what is wrong with a graph_url or authority_url, or "".
// Both must be https; graph_url may be plain http on a loopback address (a local
// proxy or a test). The authority must be https even there: the identity library
// refuses anything else.
func CheckURL(raw string, authority bool) string {
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
	if !config.ValidHost(u.Hostname()) {
		return fmt.Sprintf("%q: %q is not a host name or IP address", raw, u.Hostname())
	}
	if p := u.Port(); p != "" && !config.ValidPort(p) {
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
