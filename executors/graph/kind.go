package graph

import (
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors"
)

// Describe is the graph kind: checks only, with the parameters each reads (the
// "Params:" of each check's doc comment) and the fields of its row type. A
// recreate's client_state is not a playbook parameter: it comes from the
// target's configuration (withClientState). Run's switch and this list name
// the same checks (TestDescribeMatchesRun).
func Describe() executors.Kind {
	p := func(name, typ string) executors.Param { return executors.Param{Name: name, Type: typ} }
	req := func(name, typ string) executors.Param { return executors.Param{Name: name, Type: typ, Required: true} }
	return executors.Kind{
		Name:   Kind,
		Config: Config(),
		Checks: []executors.Check{
			{Name: CheckServiceHealth, Doc: "unresolved incidents and advisories of a Microsoft 365 service (default Exchange Online)",
				Params: []executors.Param{p("service", "string"), p("include_resolved", "bool")},
				Fields: executors.RowFields(ServiceHealthIssue{})},
			{Name: CheckSubscriptions, Doc: "the app's change-notification subscriptions and their expiry",
				Params: []executors.Param{p("window_minutes", "int")},
				Fields: executors.RowFields(Subscription{})},
			{Name: CheckRenewalProbe, Doc: "a renewal that changes nothing: PATCH expirationDateTime to its current value",
				Params: []executors.Param{p("subscription_id", "string")},
				Fields: executors.RowFields(RenewalProbe{})},
			{Name: CheckSubscriptionLookup, Doc: "one subscription read by id; a 404 is the row with Status deleted",
				Params: []executors.Param{req("subscription_id", "string")},
				Fields: executors.RowFields(SubscriptionLookup{})},
			{Name: CheckMessageTrace, Doc: "Exchange Online message trace of a sender's or a recipient's mail",
				Params: []executors.Param{p("sender", "email"), p("recipient", "email"), p("hours", "int"), p("top", "int"), p("status", "string")},
				OneOf:  [][]string{{"sender", "recipient"}},
				Fields: executors.RowFields(MessageTrace{})},
			{Name: CheckRenewSubscription, Doc: "relief: extend a subscription (PATCH expirationDateTime)",
				Params: []executors.Param{req("subscription_id", "string"), p("minutes", "int")},
				Fields: executors.RowFields(Renewal{})},
			{Name: CheckRecreateSubscription, Doc: "relief: replace a lapsed subscription and reconcile the lapse",
				Params: []executors.Param{p("subscription_id", "string"), p("replace_live", "bool"), p("resource", "string"),
					p("change_type", "string"), p("notification_url", "string"), p("lifecycle_notification_url", "string"),
					p("minutes", "int"), p("since", "time"), p("reconcile", "bool")},
				Fields: executors.RowFields(Recreation{})},
			{Name: CheckDeltaReconcile, Doc: "the messages a mailbox or folder received in a window (delta query)",
				Params: []executors.Param{req("mailbox", "string"), p("folder", "string"), p("all_folders", "bool"),
					p("since", "time"), p("until", "time"), p("delta_link", "string")},
				Fields: executors.RowFields(Reconciliation{})},
		},
		New: func(name string, t config.Target, env executors.Env) (executors.Executor, error) {
			// Without an app registration the target is not set up yet: ndr-5.5.4
			// skips its service-health step with this note.
			if err := t.RequireApp(name); err != nil {
				return nil, executors.NotConfigured(err)
			}
			return New(name, t, WithRetried(env.RetriedBy(config.KindGraph)))
		},
	}
}
