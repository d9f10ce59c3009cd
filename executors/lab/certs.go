package lab

import (
	"crypto/sha1"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors/psobj"
)

// Exchange certificates (Get-ExchangeCertificate) and the reliefs that touch a
// connector's certificate (Set-SendConnector and Set-ReceiveConnector
// -TlsCertificateName).
// Sources: Microsoft Learn "Get-ExchangeCertificate" (parameter sets, the
// properties Format-List shows and their values), "Set-SendConnector"
// (TlsCertificateName written "<I>issuer<S>subject"); SOURCES.md says what is
// not verified.

// exchangeCertificate is one certificate in a server's local computer store,
// as Get-ExchangeCertificate shows it.
type exchangeCertificate struct {
	thumbprint string
	subject    string // X.500: "CN=mail.contoso.com"
	issuer     string // X.500: "CN=R11, O=Let's Encrypt, C=US"
	domains    []string
	notBefore  time.Time
	notAfter   time.Time
	services   string // None, or flags "IMAP, POP, IIS, SMTP"
	// status, when the file gives one (RevocationCheckFailure, Untrusted …);
	// otherwise Valid, or DateInvalid once NotAfter has passed.
	status     string
	selfSigned bool
	hasKey     bool
	rootCAType string
	friendly   string
	serial     string
	keySize    int
}

// certStatuses are Get-ExchangeCertificate's Status values (Learn).
var certStatuses = []string{"DateInvalid", "Invalid", "PendingRequest", "RevocationCheckFailure", "Revoked", "Unknown", "Untrusted", "Valid"}

// certServices are the services Enable-ExchangeCertificate assigns (Learn).
var certServices = []string{"None", "Federation", "IIS", "IMAP", "POP", "SMTP", "UM", "UMCallRouter"}

// rootCATypes are Get-ExchangeCertificate's RootCAType values (Learn).
var rootCATypes = []string{"None", "ThirdParty", "Enterprise", "Registry", "GroupPolicy", "Unknown"}

// labThumbprint is a stable 40-hex-digit thumbprint for a certificate the file
// gives none.
func labThumbprint(seed string) string {
	return strings.ToUpper(fmt.Sprintf("%x", sha1.Sum([]byte(seed))))
}

// defaultCertificates are what Exchange 2019 setup leaves on a Mailbox server:
// the self-signed "Microsoft Exchange" certificate (IMAP, POP, IIS, SMTP; five
// years), the Microsoft Exchange Server Auth Certificate (SMTP; OAuth) and IIS
// Web Management's WMSvc certificate (None). Their dates are the lab's, set
// years before now.
func defaultCertificates(s *server, now time.Time) []*exchangeCertificate {
	installed := now.AddDate(-2, 0, 0).Truncate(24 * time.Hour)
	return []*exchangeCertificate{
		{thumbprint: labThumbprint("self " + s.name), subject: "CN=" + s.name, issuer: "CN=" + s.name, domains: []string{s.name, s.host},
			notBefore: installed, notAfter: installed.AddDate(5, 0, 0), services: "IMAP, POP, IIS, SMTP", selfSigned: true, hasKey: true,
			rootCAType: "Registry", friendly: "Microsoft Exchange", keySize: 2048},
		{thumbprint: labThumbprint("auth " + s.name), subject: "CN=Microsoft Exchange Server Auth Certificate",
			issuer: "CN=Microsoft Exchange Server Auth Certificate", notBefore: installed, notAfter: installed.AddDate(5, 0, 0),
			services: "SMTP", selfSigned: true, hasKey: true, rootCAType: "None", friendly: "Microsoft Exchange Server Auth Certificate", keySize: 2048},
		{thumbprint: labThumbprint("wmsvc " + s.name), subject: "CN=WMSvc-SHA2-" + s.name, issuer: "CN=WMSvc-SHA2-" + s.name,
			domains: []string{"WMSvc-SHA2-" + s.name}, notBefore: installed, notAfter: installed.AddDate(10, 0, 0), services: "None",
			selfSigned: true, hasKey: true, rootCAType: "Registry", friendly: "WMSVC-SHA2", keySize: 2048},
	}
}

// fileCertificate is one certificate of a server in the organisation file; the
// key is its Thumbprint.
type fileCertificate struct {
	Subject            string   `yaml:"Subject"`
	Issuer             string   `yaml:"Issuer"`
	CertificateDomains []string `yaml:"CertificateDomains"`
	NotBefore          *when    `yaml:"NotBefore"`
	NotAfter           when     `yaml:"NotAfter"`
	Services           string   `yaml:"Services"`
	Status             string   `yaml:"Status"`
	IsSelfSigned       bool     `yaml:"IsSelfSigned"`
	HasPrivateKey      *bool    `yaml:"HasPrivateKey"`
	RootCAType         string   `yaml:"RootCAType"`
	FriendlyName       string   `yaml:"FriendlyName"`
	SerialNumber       string   `yaml:"SerialNumber"`
}

// certificates builds a server's store: the defaults, then the file's
// certificates by thumbprint (null removes one).
func (ld *loader) certificates(s *server, fc keyed[fileCertificate], now time.Time) error {
	s.certs = defaultCertificates(s, now)
	for _, it := range fc.items {
		c := it.val
		tp := strings.ToUpper(strings.ReplaceAll(it.key, " ", ""))
		if len(tp) != 40 || strings.Trim(tp, "0123456789ABCDEF") != "" {
			return fmt.Errorf("lab: %s: certificate %q of server %s: the key is its thumbprint, 40 hexadecimal digits", ld.at(it.node), it.key, s.name)
		}
		if c.Subject == "" || c.Issuer == "" {
			return fmt.Errorf("lab: %s: certificate %s of server %s needs Subject and Issuer (X.500: CN=mail.contoso.com)", ld.at(it.node), tp, s.name)
		}
		if err := ld.oneOf(it.node, "certificate "+tp+": Status", c.Status, certStatuses); err != nil {
			return err
		}
		if err := ld.oneOf(it.node, "certificate "+tp+": RootCAType", c.RootCAType, rootCATypes); err != nil {
			return err
		}
		services := either(c.Services, "None")
		for _, sv := range strings.Split(services, ",") {
			if !slices.Contains(certServices, strings.TrimSpace(sv)) {
				return fmt.Errorf("lab: %s: certificate %s: service %q is not one of %s", ld.at(it.node), tp, strings.TrimSpace(sv), strings.Join(certServices, ", "))
			}
		}
		notAfter := c.NotAfter.at(now)
		notBefore := notAfter.AddDate(0, 0, -90)
		if c.NotBefore != nil {
			notBefore = c.NotBefore.at(now)
		}
		ec := &exchangeCertificate{thumbprint: tp, subject: c.Subject, issuer: c.Issuer, domains: c.CertificateDomains,
			notBefore: notBefore, notAfter: notAfter, services: services, status: c.Status, selfSigned: c.IsSelfSigned,
			hasKey: c.HasPrivateKey == nil || *c.HasPrivateKey, rootCAType: either(c.RootCAType, "ThirdParty"),
			friendly: c.FriendlyName, serial: c.SerialNumber, keySize: 2048}
		if ec.serial == "" {
			ec.serial = tp[:32]
		}
		if i := slices.IndexFunc(s.certs, func(x *exchangeCertificate) bool { return x.thumbprint == tp }); i >= 0 {
			s.certs[i] = ec
		} else {
			s.certs = append(s.certs, ec)
		}
	}
	return nil
}

// getExchangeCertificate answers Get-ExchangeCertificate: the certificates of
// -Server (default: the server the command runs on), one by -Thumbprint, or by
// -Identity Server\Thumbprint; -DomainName keeps those whose subject's CN or
// CertificateDomains hold one of the names.
func getExchangeCertificate(c *call) ([]any, error) {
	s := c.local
	want := strings.ToUpper(c.str("Thumbprint"))
	if c.has("Identity") {
		if c.has("Server") {
			return nil, cmdletErr(c.cmd.name, "InvalidArgument: (:) [Get-ExchangeCertificate], ParameterBindingException", "AmbiguousParameterSet,Microsoft.Exchange.Management.SystemConfigurationTasks.GetExchangeCertificate",
				"Parameter set cannot be resolved using the specified named parameters.")
		}
		var tp string
		var err error
		if s, tp, err = c.onServer(c.str("Identity")); err != nil {
			return nil, err
		}
		want = strings.ToUpper(tp)
	}
	if c.has("Server") {
		var err error
		if s, err = c.server(); err != nil {
			return nil, err
		}
	}
	// Exchange reads a server's certificate store through the Microsoft
	// Exchange Service Host on that server (its errors say "A special Rpc error
	// occurs on server …", Learn); with the service stopped the call fails.
	if sv := s.service("MSExchangeServiceHost"); sv != nil && sv.status != "Running" {
		return nil, cmdletErr(c.cmd.name, "NotSpecified: (:) [Get-ExchangeCertificate], InvalidOperationException",
			"Microsoft.Exchange.Management.SystemConfigurationTasks.GetExchangeCertificate",
			"A special Rpc error occurs on server %s: The RPC server is unavailable.", s.name)
	}
	names, _ := c.args["DomainName"].([]string)
	var out []any
	for _, ec := range s.certs {
		if want != "" && ec.thumbprint != want {
			continue
		}
		if len(names) > 0 && !slices.ContainsFunc(names, ec.covers) {
			continue
		}
		out = append(out, certificateObj(s, ec, c.now))
	}
	if want != "" && len(out) == 0 {
		return nil, c.notFound(want)
	}
	return out, nil
}

// covers: the name is the subject's CN or one of CertificateDomains (a
// wildcard *.contoso.com covers one label).
func (ec *exchangeCertificate) covers(name string) bool {
	name = strings.ToLower(name)
	for _, d := range append(slices.Clone(ec.domains), cn(ec.subject)) {
		d = strings.ToLower(d)
		if d == name {
			return true
		}
		if rest, ok := strings.CutPrefix(d, "*."); ok {
			if label, parent, found := strings.Cut(name, "."); found && label != "" && parent == rest {
				return true
			}
		}
	}
	return false
}

// cn is the CN= part of an X.500 name.
func cn(x500 string) string {
	for _, part := range strings.Split(x500, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "CN="); ok {
			return v
		}
	}
	return ""
}

func (ec *exchangeCertificate) statusAt(now time.Time) string {
	switch {
	case ec.status != "":
		return ec.status
	case now.After(ec.notAfter) || now.Before(ec.notBefore):
		return "DateInvalid"
	}
	return "Valid"
}

func certificateObj(s *server, ec *exchangeCertificate, now time.Time) *psobj.Object {
	const typ = "Microsoft.Exchange.Management.SystemConfigurationTasks.ExchangeCertificate"
	return obj(chain(typ, "System.Security.Cryptography.X509Certificates.X509Certificate2",
		"System.Security.Cryptography.X509Certificates.X509Certificate"), "["+ec.subject+"]",
		p("RunspaceId", runspaceID),
		p("AccessRules", list("System.Security.AccessControl.CryptoKeyAccessRule", nil)),
		p("CertificateDomains", identList("Microsoft.Exchange.Data.SmtpDomainWithSubdomains", ec.domains)),
		p("HasPrivateKey", ec.hasKey),
		p("IsSelfSigned", ec.selfSigned),
		p("Issuer", ec.issuer),
		p("NotAfter", ec.notAfter),
		p("NotBefore", ec.notBefore),
		p("PublicKeySize", int64(ec.keySize)),
		p("RootCAType", enum("Microsoft.Exchange.Management.SystemConfigurationTasks.CertificateAuthorityType", ec.rootCAType)),
		p("SerialNumber", ec.serial),
		p("Services", enum("Microsoft.Exchange.Management.SystemConfigurationTasks.AllowedServices", ec.services)),
		p("Status", enum("Microsoft.Exchange.Security.Cryptography.X509Certificates.CertificateStatus", ec.statusAt(now))),
		p("Subject", ec.subject),
		p("Thumbprint", ec.thumbprint),
		p("FriendlyName", ec.friendly),
		p("Identity", s.host+`\`+ec.thumbprint),
	)
}

// setSendConnector changes what the playbooks may change on a send connector:
// its TlsCertificateName, written "<I>issuer<S>subject" (Learn,
// Set-SendConnector); "" or $null clears it. Exchange does not check that the
// certificate is installed (the queue's 454 4.7.5 says so later); neither does
// the lab.
func setSendConnector(c *call) ([]any, error) {
	id := c.str("Identity")
	i := slices.IndexFunc(c.o.connectors, func(sc *sendConnector) bool { return strings.EqualFold(sc.identity, id) })
	if i < 0 {
		return nil, c.notFound(id)
	}
	sc := c.o.connectors[i]
	if c.has("TlsCertificateName") {
		name := c.str("TlsCertificateName")
		if err := c.x509Identifier(name); err != nil {
			return nil, err
		}
		sc.tlsCertName = name
	}
	return nil, c.react(c.local, sc.identity, objSubject(sendConnectorObj(sc)))
}

// setReceiveConnector changes what the playbooks may change on a receive
// connector: its TlsCertificateName, written "<I>issuer<S>subject" as on a
// send connector (Learn, Set-ReceiveConnector); "" clears it. -Identity is
// Server\Name, or a name the local server has. Like Set-SendConnector, the lab
// does not check the certificate is installed.
func setReceiveConnector(c *call) ([]any, error) {
	id := c.str("Identity")
	s, name, err := c.onServer(id)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(s.receiveConnectors(), func(rc *receiveConnector) bool { return strings.EqualFold(rc.name, name) })
	if i < 0 {
		return nil, c.notFound(id)
	}
	rc := s.receiveConnectors()[i]
	if c.has("TlsCertificateName") {
		v := c.str("TlsCertificateName")
		if err := c.x509Identifier(v); err != nil {
			return nil, err
		}
		rc.tlsCertName = v
	}
	return nil, c.react(s, s.name+`\`+rc.name, objSubject(receiveConnectorObj(s, rc)))
}

// x509Identifier refuses a TlsCertificateName that is not "<I>issuer<S>subject"
// ("" clears it), as the cmdlets' parameter binding does (SmtpX509Identifier).
func (c *call) x509Identifier(v string) error {
	issuer, subject, ok := strings.Cut(strings.TrimPrefix(v, "<I>"), "<S>")
	if v == "" || (strings.HasPrefix(v, "<I>") && ok && issuer != "" && subject != "") {
		return nil
	}
	return cmdletErr(c.cmd.name, "InvalidArgument: (:) ["+c.cmd.name+"], ParameterBindingException", "CannotConvertArgumentNoMessage,"+c.cmd.name,
		"Cannot bind parameter 'TlsCertificateName'. Cannot convert value \"%s\" to type \"Microsoft.Exchange.Data.SmtpX509Identifier\". Error: \"The value is not in the form <I>issuer<S>subject.\"", v)
}
