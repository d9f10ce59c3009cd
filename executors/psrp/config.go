package psrp

import (
	"os"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/wsman"
)

// ExchangeConfig is the exchange kind's share of the configuration: remote
// PowerShell to /PowerShell, session configuration Microsoft.Exchange.
func ExchangeConfig() config.KindSpec {
	return config.KindSpec{
		Name:     config.KindExchange,
		Defaults: defaults("Microsoft.Exchange"),
		Keys:     keys(),
		Endpoint: func(raw string) string {
			return config.CheckURL(raw, "remote PowerShell URL", "http://ex01.contoso.com/PowerShell")
		},
		Validate: validateTarget,
	}
}

// JEAConfig is the jea kind's share of the configuration: the JEA endpoint of
// deploy/jea, registered as ndrbot, over WS-Management.
func JEAConfig() config.KindSpec {
	return config.KindSpec{
		Name:     config.KindJEA,
		Defaults: defaults("ndrbot"),
		Keys:     keys(),
		Endpoint: func(raw string) string {
			return config.CheckURL(raw, "WS-Management URL", "https://ex01.contoso.com:5986/wsman")
		},
		Validate: validateTarget,
	}
}

func defaults(configurationName string) config.Target {
	return config.Target{
		Auth:              "kerberos",
		MaxConcurrency:    4,
		OperationTimeout:  60 * time.Second,
		MaxOutputBytes:    1 << 20,
		IdleTimeout:       5 * time.Minute,
		ConfigurationName: configurationName,
	}
}

func keys() []string {
	return append(wsman.Keys(), "configuration_name", "idle_timeout", "keytab_file", "krb5_conf", "realm", "spn")
}

// validateTarget checks an exchange or jea target: remote PowerShell with Kerberos
// (the out-of-box /PowerShell virtual directory), Basic (where an admin enabled
// it, https only unless allow_unencrypted) or NTLM.
func validateTarget(prefix string, t config.Target, report config.Report) {
	switch t.Auth {
	case "kerberos", "basic", "ntlm":
	default:
		report(prefix+".auth", "must be kerberos, basic or ntlm, not %q", t.Auth)
	}
	wsman.CheckLimits(prefix, t, report)
	if t.IdleTimeout < time.Second {
		report(prefix+".idle_timeout", "%s must be at least 1s", t.IdleTimeout)
	}
	if t.ConfigurationName == "" || strings.ContainsAny(t.ConfigurationName, "/ \t?#") {
		report(prefix+".configuration_name", "%q is not a session configuration name (Microsoft.Exchange, or the JEA name registered on the servers)", t.ConfigurationName)
	}
	if t.Auth != "kerberos" {
		for key, set := range map[string]bool{"keytab_file": t.KeytabFile != "", "krb5_conf": t.Krb5Conf != "", "realm": t.Realm != "", "spn": t.SPN != ""} {
			if set {
				report(prefix+"."+key, "only used with auth: kerberos")
			}
		}
	}
	for key, file := range map[string]string{"keytab_file": t.KeytabFile, "krb5_conf": t.Krb5Conf} {
		if file == "" {
			continue
		}
		if _, err := os.Stat(file); err != nil {
			report(prefix+"."+key, "%v", err)
		}
	}
	config.CheckTLS(prefix, t, report)

	if len(t.Endpoints) == 0 {
		return
	}
	if t.Username == "" {
		report(prefix+".username", "required when endpoints are set")
	}
	hasPassword := t.Password != "" || t.PasswordFile != ""
	switch {
	case t.Auth == "kerberos" && t.KeytabFile != "" && hasPassword:
		report(prefix+".keytab_file", "set a keytab or a password, not both")
	case t.Auth == "kerberos" && !hasPassword && t.KeytabFile == "":
		report(prefix+".password", "required when endpoints are set: set %s, %s.password_file or %s.keytab_file",
			config.EnvName(prefix+".password"), prefix, prefix)
	case t.Auth != "kerberos" && !hasPassword:
		report(prefix+".password", "required when endpoints are set: set %s or %s.password_file", config.EnvName(prefix+".password"), prefix)
	}
	wsman.CheckBasicOverHTTP(prefix, t, report)
}
