package config

import (
	"reflect"
	"slices"
)

// KindSpec is one target kind's share of the configuration: the defaults of its
// targets, the target keys it reads and what makes one of its targets invalid.
// Each executor package declares its own (executors.Kind.Config) and the caller
// hands the list to Load, Default, Validate and Print: config itself knows no
// kind, so a new kind is a new executor package and a line in its registry,
// with no edit here. config cannot import the executors (they import config for
// Target), which is why the list comes in from outside.
type KindSpec struct {
	// Name is the kind as configured (targets.X.kind).
	Name string
	// Defaults fill the keys a target of the kind leaves unset (zero), once the
	// file and the environment have said what each target's kind is: turning
	// the exchange target into a lab one does not drag remoting settings along.
	Defaults Target
	// Keys are the target keys (mapstructure names) the kind reads among those
	// some kind claims. A key no kind lists (kind, endpoints, max_concurrency)
	// is read by every kind; a listed key set on a target of a kind that does
	// not list it is reported, since it is almost always a mistake (timeout on
	// a winrm target meant as operation_timeout).
	Keys []string
	// AnyKey: targets of the kind stand in for any other kind and accept every
	// key (lab).
	AnyKey bool
	// Endpoint returns what is wrong with one endpoint of a target of the kind,
	// "" when nothing. Nil accepts any. Empty and repeated endpoints are
	// refused for every kind before it is asked.
	Endpoint func(raw string) string
	// Validate reports, through report, what else is wrong with target t
	// configured under prefix ("targets.exchange"): report's key is the full
	// key (prefix + ".auth"), its format and args make the message. Nil: nothing.
	Validate func(prefix string, t Target, report Report)
}

// Report receives one problem of a target: the full key and the message.
type Report func(key, format string, args ...any)

// Kinds is the list of kind specifications a build knows, in the order its
// registry gives them (messages list the kinds in that order).
type Kinds []KindSpec

// Lookup returns the spec of the kind called name.
func (ks Kinds) Lookup(name string) (KindSpec, bool) {
	for _, k := range ks {
		if k.Name == name {
			return k, true
		}
	}
	return KindSpec{}, false
}

// Names lists the kinds in their order.
func (ks Kinds) Names() []string {
	out := make([]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, k.Name)
	}
	return out
}

// keyKinds says which kinds read a target key: nil when no kind claims it, so
// every kind reads it.
func (ks Kinds) keyKinds(key string) []string {
	var out []string
	for _, k := range ks {
		if slices.Contains(k.Keys, key) {
			out = append(out, k.Name)
		}
	}
	return out
}

// defaults returns the defaults of the kind called name: none for an unknown one.
func (ks Kinds) defaults(name string) Target {
	k, _ := ks.Lookup(name)
	return k.Defaults
}

// withKindDefaults fills the zero fields of t from its kind's defaults.
func (t Target) withKindDefaults(ks Kinds) Target {
	d := reflect.ValueOf(ks.defaults(t.Kind))
	rv := reflect.ValueOf(&t).Elem()
	for i := range rv.NumField() {
		if rv.Field(i).IsZero() && !d.Field(i).IsZero() {
			rv.Field(i).Set(d.Field(i))
		}
	}
	return t
}
