package probe

import (
	"time"

	"github.com/ndrbot/ndrbot/config"
)

// Config is the probe kind's share of the configuration: the dial timeout and
// the name it gives in EHLO; endpoints are host[:port].
func Config() config.KindSpec {
	return config.KindSpec{
		Name:     Kind,
		Defaults: config.Target{Timeout: 10 * time.Second},
		Keys:     []string{"timeout", "helo_name"},
		Endpoint: config.CheckHostPort,
		Validate: func(prefix string, t config.Target, report config.Report) {
			if t.Timeout <= 0 {
				report(prefix+".timeout", "%s must be positive", t.Timeout)
			}
			if t.HeloName != "" && !config.ValidHostname(t.HeloName) {
				report(prefix+".helo_name", "%q is not a host name", t.HeloName)
			}
		},
	}
}
