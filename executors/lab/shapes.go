package lab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors/psobj"
)

// Builders for objects shaped as Exchange 2019's arrive over remote PowerShell:
// every type name carries PSRP's "Deserialized." prefix, enums are objects with
// a ToString and their number, identities and Exchange value types
// (ByteQuantifiedSize, EnhancedTimeSpan, Unlimited<T>) are objects with the
// ToString Exchange prints. SOURCES.md says where each shape comes from.

const ds = "Deserialized."

// chain prefixes type names, most derived first, and ends them with System.Object.
func chain(types ...string) []string {
	out := make([]string, 0, len(types)+1)
	for _, t := range types {
		out = append(out, ds+t)
	}
	return append(out, ds+"System.Object")
}

// obj builds a complex object; toString is its ToString (Exchange objects print
// their Identity).
func obj(types []string, toString string, props ...psobj.Prop) *psobj.Object {
	return &psobj.Object{TypeNames: types, ToString: toString, HasToString: true, Props: props}
}

func p(name string, v any) psobj.Prop { return psobj.Prop{Name: name, Value: v} }

// enumValues numbers each enum's names in declaration order; SOURCES.md notes
// that the numbers are not verified against Exchange's assemblies.
var enumValues = map[string][]string{
	"Microsoft.Exchange.Data.DeliveryType": {"Undefined", "DnsConnectorDelivery", "NonSmtpGatewayDelivery",
		"SmartHostConnectorDelivery", "SmtpRelayToRemoteAdSite", "SmtpRelayToTiRg", "SmtpRelayWithinAdSite",
		"SmtpRelayWithinAdSiteToEdge", "MapiDelivery", "Unreachable", "ShadowRedundancy", "Heartbeat",
		"DeliveryAgent", "SmtpDeliveryToMailbox", "SmtpRelayToDag", "SmtpRelayToMailboxDeliveryGroup",
		"SmtpRelayToConnectorSourceServers", "SmtpRelayToServers", "SmtpRelayToRemoteForest", "SmtpDeliveryToExo"},
	"Microsoft.Exchange.Data.QueueViewer.QueueStatus":     {"None", "Active", "Ready", "Retry", "Suspended", "Connecting"},
	"Microsoft.Exchange.Data.QueueViewer.MessageStatus":   {"None", "Active", "Retry", "Suspended", "PendingRemove", "PendingSuspend", "Ready", "Locked"},
	"Microsoft.Exchange.Data.RiskLevel":                   {"Normal", "Bulk", "High", "Low"},
	"Microsoft.Exchange.Data.QueueViewer.NextHopCategory": {"Internal", "External"},
	"System.ServiceProcess.ServiceControllerStatus": {"", "Stopped", "StartPending", "StopPending", "Running",
		"ContinuePending", "PausePending", "Paused"},
	"System.ServiceProcess.ServiceStartMode":                                                       {"Boot", "System", "Automatic", "Manual", "Disabled"},
	"Microsoft.Exchange.Data.ServerComponentStates.ServiceState":                                   {"Active", "Inactive", "Draining"},
	"Microsoft.Exchange.Data.Directory.ThrottlingPolicyScopeType":                                  {"Regular", "Organization", "Global"},
	"Microsoft.Exchange.Data.Directory.SystemConfiguration.AcceptedDomainType":                     {"Authoritative", "ExternalRelay", "InternalRelay"},
	"Microsoft.Exchange.Data.Directory.ServerRole":                                                 {"None", "Mailbox", "Edge"},
	"Microsoft.Exchange.Data.Directory.Recipient.RecipientTypeDetails":                             {"None", "UserMailbox", "SharedMailbox", "RoomMailbox"},
	"Microsoft.Exchange.Data.Directory.SystemConfiguration.ReceiveConnector+TransportRole":         {"None", "HubTransport", "FrontendTransport"},
	"Microsoft.Exchange.Data.Directory.SystemConfiguration.SmtpSendConnectorConfig+AuthMechanisms": {"None", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer", "ExternalAuthoritative"},
	"Microsoft.Exchange.Data.Directory.SystemConfiguration.TlsAuthLevel":                           {"EncryptionOnly", "CertificateValidation", "DomainValidation"},
}

// enum builds an enum value; an unknown name keeps the ToString with number -1.
func enum(typ, name string) *psobj.Object {
	n := slices.Index(enumValues[typ], name)
	return &psobj.Object{TypeNames: chain(typ, "System.Enum", "System.ValueType"), ToString: name, HasToString: true, Value: int64(n)}
}

// ident builds an identity-like value (ADObjectId, QueueIdentity, SmtpAddress …).
func ident(typ, s string) any {
	if s == "" {
		return nil
	}
	return &psobj.Object{TypeNames: chain(typ), ToString: s, HasToString: true}
}

// list builds a multi-valued property of items.
func list(typ string, items []any) *psobj.Object {
	if items == nil {
		items = []any{}
	}
	return &psobj.Object{TypeNames: chain("Microsoft.Exchange.Data.MultiValuedProperty`1[["+typ+"]]",
		"Microsoft.Exchange.Data.MultiValuedPropertyBase"), List: items}
}

// identList builds a MultiValuedProperty of identities.
func identList(typ string, names []string) *psobj.Object {
	items := make([]any, 0, len(names))
	for _, n := range names {
		items = append(items, ident(typ, n))
	}
	return list(typ, items)
}

// strArray builds a string[] (message tracking's Recipients): PSRP rehydrates
// arrays of primitives, so no Deserialized. prefix.
func strArray(items []string) *psobj.Object {
	l := make([]any, 0, len(items))
	for _, s := range items {
		l = append(l, s)
	}
	return &psobj.Object{TypeNames: []string{"System.String[]", "System.Array", "System.Object"}, List: l}
}

const (
	typeByteSize = "Microsoft.Exchange.Data.ByteQuantifiedSize"
	typeSpan     = "Microsoft.Exchange.Data.EnhancedTimeSpan"
)

// unlimitedOf is Unlimited<T>'s type name as .NET prints a generic.
func unlimitedOf(t string) string {
	return "Microsoft.Exchange.Data.Unlimited`1[[" + t + ", Microsoft.Exchange.Data, Version=15.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35]]"
}

// span is an EnhancedTimeSpan: ToString as .NET's TimeSpan ("00:10:00", "2.00:00:00",
// "00:00:04.2130000").
func span(d time.Duration) *psobj.Object {
	return &psobj.Object{TypeNames: chain(typeSpan, "System.ValueType"), ToString: timeSpanString(d), HasToString: true}
}

func timeSpanString(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h, m, s := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	out := fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	if ticks := (d % time.Second) / 100; ticks != 0 { // .NET prints 100 ns ticks: "00:00:04.2130000"
		out += fmt.Sprintf(".%07d", ticks)
	}
	if days > 0 {
		out = fmt.Sprintf("%d.%s", days, out)
	}
	return sign + out
}

// unlimitedInt is an Unlimited<int> (nil is Unlimited).
func unlimitedInt(v *int64, of string) *psobj.Object {
	o := &psobj.Object{TypeNames: chain(unlimitedOf(of), "System.ValueType"), HasToString: true, ToString: "Unlimited"}
	if v != nil {
		o.ToString = strconv.FormatInt(*v, 10)
	}
	return o
}

// byteSize is a ByteQuantifiedSize ("1.5 MB (1,572,864 bytes)").
func byteSize(n int64) *psobj.Object {
	return &psobj.Object{TypeNames: chain(typeByteSize, "System.ValueType"), ToString: bytesString(n), HasToString: true}
}

// unlimitedSize is an Unlimited<ByteQuantifiedSize>; sizeUnlimited is Unlimited.
func unlimitedSize(n int64) *psobj.Object {
	o := &psobj.Object{TypeNames: chain(unlimitedOf(typeByteSize), "System.ValueType"), ToString: "Unlimited", HasToString: true}
	if n != sizeUnlimited {
		o.ToString = bytesString(n)
	}
	return o
}

// bytesString prints a size as ByteQuantifiedSize.ToString does: the largest unit
// with at most one decimal, then the exact count with thousands separators.
func bytesString(n int64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	num := strconv.FormatFloat(f, 'f', 1, 64)
	num = strings.TrimSuffix(num, ".0")
	if i == 0 {
		num = strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%s %s (%s bytes)", num, units[i], thousands(n))
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// date is a DateTime property: time.Time, or $null when zero.
func date(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func str(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// guid renders a Guid property (a primitive <G> over PSRP, a string here).
func guid(s string) string {
	if s == "" {
		return "00000000-0000-0000-0000-000000000000"
	}
	return s
}

// objectState is the ObjectState every Exchange configuration object carries.
func objectState() *psobj.Object {
	return &psobj.Object{TypeNames: chain("Microsoft.Exchange.Data.ObjectState", "System.Enum", "System.ValueType"),
		ToString: "Unchanged", HasToString: true, Value: int64(1)}
}
