package lab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors/psobj"
)

// Reliefs change the organisation the way the real cmdlets do, and nothing more:
//
//   - Restart-Service MSExchangeTransport: the service runs again; queues keep
//     their messages (mail.que survives a restart) and their status, and
//     component states are untouched (a restart does not undo a requester).
//   - Retry-Queue: the queue connects now (Status Active, LastRetryTime and
//     NextRetryTime now); to a destination the org file describes, the attempt
//     succeeds or fails as that destination treats our servers.
//   - Suspend-Queue / Resume-Queue: Status Suspended / back to Active or Ready.
//   - Set-ThrottlingPolicy, Set-TransportService: the named settings change.
//   - Set-ServerComponentState: only that requester's entry changes.
//
// What the world then does (a queue drains, failures stop) is the org file's
// behaviours: see behaviour below and ORGFILE.md.

// behaviour is one declared reaction of the world to a relief.
type behaviour struct {
	where    string // file:line, for messages
	after    string // the relief cmdlet
	server   string // "" = any server
	identity string // "" = any -Identity (or -Name)
	when     []condition
	// Effects.
	queues       []queuePatch
	components   []componentPatch
	stopFailures bool
	fired        int
}

type condition struct {
	prop  string
	op    string // >=, <=, >, <, ==, !=
	value string
}

type componentPatch struct{ server, component, requester, state string }

type queuePatch struct {
	identity string
	apply    func(q *queue, now time.Time)
}

// subject is what a relief changed, for conditions: a property by name.
type subject func(prop string) (any, bool)

// react runs the behaviours a successful relief triggers.
func (c *call) react(s *server, identity string, subj subject) error {
	for _, b := range c.o.behaviours {
		if !strings.EqualFold(b.after, c.cmd.name) ||
			(b.server != "" && !strings.EqualFold(b.server, s.name) && !strings.EqualFold(b.server, s.host)) ||
			(b.identity != "" && !strings.EqualFold(b.identity, identity)) {
			continue
		}
		ok, err := b.holds(subj)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		b.fired++
		for _, qp := range b.queues {
			q, _ := c.o.queueByID(qp.identity)
			if q == nil {
				return fmt.Errorf("%s: behaviour names queue %q, which the organisation does not have", b.where, qp.identity)
			}
			qp.apply(q, c.now)
		}
		for _, cp := range b.components {
			c.o.serverByID(cp.server).component(cp.component).set(cp.requester, cp.state, c.now)
		}
		if b.stopFailures && c.o.stoppedAt.IsZero() {
			c.o.stoppedAt = c.now
			c.o.failing = false
		}
	}
	return nil
}

func (b *behaviour) holds(subj subject) (bool, error) {
	for _, cond := range b.when {
		v, ok := subj(cond.prop)
		if !ok {
			return false, fmt.Errorf("%s: behaviour condition on %q: %s has no such property", b.where, cond.prop, b.after)
		}
		if !cond.test(v) {
			return false, nil
		}
	}
	return true, nil
}

// test compares a property's row value (psobj.Scalar: Unlimited is +Inf) with
// the condition's value: numerically when both are numbers, else as text.
func (cond condition) test(raw any) bool {
	v, unlimited := psobj.Scalar(raw)
	want, werr := strconv.ParseFloat(cond.value, 64)
	var got float64
	numeric := werr == nil
	switch x := v.(type) {
	case int64:
		got = float64(x)
	case float64:
		got = x
	default:
		numeric = numeric && unlimited
		if unlimited {
			got = 1e308
		}
	}
	if !numeric {
		eq := strings.EqualFold(fmt.Sprint(v), cond.value) || (unlimited && strings.EqualFold(cond.value, "Unlimited"))
		switch cond.op {
		case "==":
			return eq
		case "!=":
			return !eq
		}
		return false
	}
	switch cond.op {
	case ">=":
		return got >= want
	case "<=":
		return got <= want
	case ">":
		return got > want
	case "<":
		return got < want
	case "==":
		return got == want
	case "!=":
		return got != want
	}
	return false
}

// objSubject reads a condition's property from the object a Get- cmdlet would
// show for what changed.
func objSubject(o *psobj.Object) subject { return o.Prop }

// queueByID finds a queue by "Server\Id" anywhere in the organisation.
func (o *org) queueByID(id string) (*queue, *server) {
	srv, _, _ := strings.Cut(id, `\`)
	s := o.serverByID(srv)
	if s == nil {
		return nil, nil
	}
	for _, q := range s.queues {
		if queueMatches(q, s, id) {
			return q, s
		}
	}
	return nil, s
}

// queueArg resolves -Identity of a queue relief; without a server part it is
// the local server's.
func (c *call) queueArg() (*queue, *server, error) {
	id := c.str("Identity")
	if !strings.Contains(id, `\`) {
		id = c.local.name + `\` + id
	}
	q, s := c.o.queueByID(id)
	if q == nil {
		return nil, nil, cmdletErr(c.cmd.name, "NotSpecified: (:) [], LocalizedException", "Microsoft.Exchange.Management.QueueViewerTasks."+strings.ReplaceAll(c.cmd.name, "-", ""),
			"The queue \"%s\" couldn't be found.", c.str("Identity"))
	}
	return q, s, nil
}

func retryQueue(c *call) ([]any, error) {
	q, s, err := c.queueArg()
	if err != nil {
		return nil, err
	}
	if q.Status == "Suspended" {
		return nil, cmdletErr(c.cmd.name, "InvalidOperation: (:) [Retry-Queue], LocalizedException", "Microsoft.Exchange.Management.QueueViewerTasks.RetryQueue",
			"The queue \"%s\" is suspended. Resume it before retrying it.", q.Identity)
	}
	c.o.connect(s, q, c.now)
	return nil, c.react(s, q.Identity, objSubject(queueObj(q)))
}

// connect is a delivery attempt now: to a destination the organisation knows,
// it succeeds or fails as the destination treats the server (smtp421.go);
// otherwise the queue is Active and the behaviours say what follows.
func (o *org) connect(s *server, q *queue, now time.Time) {
	if _, known := o.destinations[strings.ToLower(q.NextHopDomain)]; known {
		o.attempt(s, q)
		return
	}
	q.LastRetryTime, q.NextRetryTime = now, now
	q.Status = "Ready"
	if q.MessageCount > 0 {
		q.Status = "Active"
	}
}

func suspendQueue(c *call) ([]any, error) {
	q, s, err := c.queueArg()
	if err != nil {
		return nil, err
	}
	q.Status, q.NextRetryTime = "Suspended", time.Time{}
	return nil, c.react(s, q.Identity, objSubject(queueObj(q)))
}

func resumeQueue(c *call) ([]any, error) {
	q, s, err := c.queueArg()
	if err != nil {
		return nil, err
	}
	if q.Status == "Suspended" {
		c.o.connect(s, q, c.now)
	}
	return nil, c.react(s, q.Identity, objSubject(queueObj(q)))
}

func restartService(c *call) ([]any, error) {
	names, _ := c.args["Name"].([]string)
	var out []any
	for _, n := range names {
		sv := c.local.service(n)
		if sv == nil {
			return nil, cmdletErr(c.cmd.name, fmt.Sprintf("ObjectNotFound: (%s:String) [Restart-Service], ServiceCommandException", n),
				"NoServiceFoundForGivenName,Microsoft.PowerShell.Commands.RestartServiceCommand", "Cannot find any service with service name '%s'.", n)
		}
		sv.status = "Running"
		if strings.EqualFold(sv.name, "MSExchangeTransport") {
			// Queues come back from mail.que as they were and are retried; a
			// queue in Retry keeps its error until the retry says otherwise.
			for _, q := range c.local.queues {
				if q.Status == "Active" {
					q.Status = "Ready"
				}
			}
		}
		if pass, _ := c.args["PassThru"].(bool); pass {
			out = append(out, serviceObj(c.local, sv))
		}
		if err := c.react(c.local, sv.name, objSubject(serviceObj(c.local, sv))); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func setThrottlingPolicy(c *call) ([]any, error) {
	pol := c.o.findPolicy(c.str("Identity"))
	if pol == nil {
		return nil, c.notFound(c.str("Identity"))
	}
	for name, dst := range map[string]**int64{"RecipientRateLimit": &pol.recipient, "MessageRateLimit": &pol.message, "ForwardeeLimit": &pol.forwardee} {
		if v, ok := c.args[name]; ok {
			*dst = v.(*int64)
			delete(pol.unset, name)
		}
	}
	return nil, c.react(c.local, pol.name, objSubject(policyObj(pol)))
}

func setTransportService(c *call) ([]any, error) {
	s := c.o.serverByID(c.str("Identity"))
	if s == nil {
		return nil, c.notFound(c.str("Identity"))
	}
	maxOut, perDomain := s.maxOutbound, s.maxPerDomain
	if v, ok := c.args["MaxOutboundConnections"]; ok {
		maxOut = v.(*int64)
	}
	if v, ok := c.args["MaxPerDomainOutboundConnections"]; ok {
		perDomain = v.(*int64)
	}
	if perDomain == nil && maxOut != nil || perDomain != nil && maxOut != nil && *perDomain > *maxOut {
		return nil, cmdletErr(c.cmd.name, "InvalidOperation: (:) [Set-TransportService], DataValidationException", "[Server="+s.name+"],Microsoft.Exchange.Management.SystemConfigurationTasks.SetTransportService",
			"The value of MaxPerDomainOutboundConnections (%s) must be less than or equal to the value of MaxOutboundConnections (%s).", unlimited(perDomain), unlimited(maxOut))
	}
	s.maxOutbound, s.maxPerDomain = maxOut, perDomain
	st := &s.settings
	spans := map[string]*time.Duration{"MessageRetryInterval": &st.MessageRetryInterval, "TransientFailureRetryInterval": &st.TransientFailureRetryInterval,
		"OutboundConnectionFailureRetryInterval": &st.OutboundConnectionFailureRetryInterval, "MessageExpirationTimeout": &st.MessageExpirationTimeout,
		"DelayNotificationTimeout": &st.DelayNotificationTimeout}
	for name, dst := range spans {
		if v, ok := c.args[name]; ok {
			*dst = v.(time.Duration)
		}
	}
	ints := map[string]*int{"TransientFailureRetryCount": &st.TransientFailureRetryCount, "MaxConcurrentMailboxDeliveries": &st.MaxConcurrentMailboxDeliveries,
		"MaxConcurrentMailboxSubmissions": &st.MaxConcurrentMailboxSubmissions, "MaxConnectionRatePerMinute": &st.MaxConnectionRatePerMinute}
	for name, dst := range ints {
		if v, ok := c.args[name]; ok {
			*dst = int(v.(int64))
		}
	}
	return nil, c.react(s, s.name, objSubject(transportObj(s)))
}

func setServerComponentState(c *call) ([]any, error) {
	s := c.o.serverByID(c.str("Identity"))
	if s == nil {
		return nil, c.notFound(c.str("Identity"))
	}
	comp := s.findComponent(c.str("Component"))
	if comp == nil {
		return nil, cmdletErr(c.cmd.name, "InvalidArgument: (:) [Set-ServerComponentState], ArgumentException", "Microsoft.Exchange.Management.SystemConfigurationTasks.SetServerComponentState",
			"The component '%s' is not a valid server component.", c.str("Component"))
	}
	state, err := c.oneOf("State", componentStates)
	if err != nil {
		return nil, err
	}
	requester, err := c.oneOf("Requester", requesterNames)
	if err != nil {
		return nil, err
	}
	comp.set(requester, state, c.now)
	return nil, c.react(s, s.name, objSubject(componentObj(s, comp)))
}

// oneOf validates an argument against a ValidateSet, returning its canonical case.
func (c *call) oneOf(name string, set []string) (string, error) {
	v := c.str(name)
	if i := slices.IndexFunc(set, func(s string) bool { return strings.EqualFold(s, v) }); i >= 0 {
		return set[i], nil
	}
	return "", cmdletErr(c.cmd.name, "InvalidData: (:) ["+c.cmd.name+"], ParameterBindingValidationException", "ParameterArgumentValidationError,"+c.cmd.name,
		"Cannot validate argument on parameter '%s'. The argument \"%s\" does not belong to the set \"%s\" specified by the ValidateSet attribute. Supply an argument that is in the set and then try the command again.",
		name, v, strings.Join(set, ","))
}
