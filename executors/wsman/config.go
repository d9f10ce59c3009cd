package wsman

import (
	"time"

	"github.com/ndrbot/ndrbot/config"
)

// MaxConcurrency is the highest max_concurrency a WS-Management target (winrm,
// exchange, jea) may have: Exchange allows 18 concurrent remote PowerShell
// connections per user (PowerShellMaxConcurrency) and the bot must never hit
// that ceiling, or its own steps start failing with quota faults.
const MaxConcurrency = 18

// Keys are the target keys every WS-Management kind reads.
func Keys() []string {
	return []string{"auth", "username", "password", "password_file", "allow_unencrypted",
		"operation_timeout", "max_output_bytes", "ca_file", "insecure_skip_verify"}
}

// CheckLimits reports what every WS-Management target bounds out of range.
func CheckLimits(prefix string, t config.Target, report config.Report) {
	if t.MaxConcurrency < 1 || t.MaxConcurrency > MaxConcurrency {
		report(prefix+".max_concurrency", "%d is out of range 1..%d (Exchange allows %d concurrent remote PowerShell connections per user; the bot must stay within it)",
			t.MaxConcurrency, MaxConcurrency, MaxConcurrency)
	}
	if t.OperationTimeout < time.Second {
		report(prefix+".operation_timeout", "%s must be at least 1s (WS-Management counts in seconds)", t.OperationTimeout)
	}
	if t.MaxOutputBytes < 1 {
		report(prefix+".max_output_bytes", "%d must be positive", t.MaxOutputBytes)
	}
}

// CheckBasicOverHTTP refuses a clear-text password unless the operator accepted it.
func CheckBasicOverHTTP(prefix string, t config.Target, report config.Report) {
	if t.Auth == "basic" && !t.AllowUnencrypted {
		if i := config.FirstHTTP(t.Endpoints); i >= 0 {
			report(prefix+".allow_unencrypted", "basic auth over http (endpoints[%d] %q) sends the password unencrypted: use https, or set allow_unencrypted: true to accept that",
				i, t.Endpoints[i])
		}
	}
}
