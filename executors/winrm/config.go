package winrm

import (
	"time"

	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/wsman"
)

// Config is the winrm kind's share of the configuration: a plain WinRM shell
// with NTLM (or Basic where an admin enabled it) and what a script may need run
// first (preamble).
func Config() config.KindSpec {
	return config.KindSpec{
		Name: config.KindWinRM,
		Defaults: config.Target{
			Auth:             "ntlm",
			MaxConcurrency:   4,
			OperationTimeout: 60 * time.Second,
			MaxOutputBytes:   1 << 20,
		},
		Keys: append(wsman.Keys(), "preamble"),
		Endpoint: func(raw string) string {
			return config.CheckURL(raw, "WS-Management URL", "https://ex01.contoso.com:5986/wsman")
		},
		Validate: validate,
	}
}

func validate(prefix string, t config.Target, report config.Report) {
	if t.Auth != "ntlm" && t.Auth != "basic" {
		report(prefix+".auth", "must be ntlm or basic, not %q", t.Auth)
	}
	wsman.CheckLimits(prefix, t, report)
	config.CheckTLS(prefix, t, report)

	if len(t.Endpoints) == 0 {
		return // not configured yet; RequireEndpoints speaks when it is used
	}
	if t.Username == "" {
		report(prefix+".username", "required when endpoints are set")
	}
	if t.Password == "" && t.PasswordFile == "" {
		report(prefix+".password", "required when endpoints are set: set %s or %s.password_file",
			config.EnvName(prefix+".password"), prefix)
	}
	wsman.CheckBasicOverHTTP(prefix, t, report)
}
