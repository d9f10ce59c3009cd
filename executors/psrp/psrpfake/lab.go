package psrpfake

import (
	"context"
	"errors"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
)

// Invoker answers one cmdlet with PowerShell objects. A target of
// executors/lab is one: Lab puts a simulated organisation behind the fake.
type Invoker interface {
	Invoke(host string, a executors.Action) (items []any, warnings []string, err error)
}

// Lab answers every command as the invoker's host of the same name would (the
// fake's host is the Host header the client addressed):
//
//	l, _ := lab.New("overloaded-queue", lab.Options{})
//	srv := psrpfake.New(psrpfake.Lab(l.Target("exchange", "exchange", nil)))
//
// Parameters reach the lab as the server's binder would see them: the decoded
// PowerShell values. An error the organisation raises (an unknown cmdlet or
// parameter, an object not found) becomes an error record with its category.
func Lab(inv Invoker) Handler {
	return func(_ context.Context, host string, cmd Command) Result {
		a := executors.Action{Step: cmd.Name, Cmdlet: cmd.Name}
		for _, p := range cmd.Params {
			a.Args = append(a.Args, executors.Arg{Name: p.Name, Value: plain(p.Value)})
		}
		items, warnings, err := inv.Invoke(host, a)
		res := Result{Output: items, Warnings: warnings}
		if err != nil {
			f := Failure{Message: err.Error(), Category: "NotSpecified", Target: cmd.Name}
			var rec interface{ CategoryName() string }
			if errors.As(err, &rec) && rec.CategoryName() != "" {
				f.Category = rec.CategoryName()
			}
			res.Errors = []Failure{f}
		}
		return res
	}
}

// plain turns a decoded parameter value into what a binder converts from: lists
// as []any, a switch's SwitchParameter as its bool, other objects as their
// string form.
func plain(v any) any {
	o, ok := v.(*psobj.Object)
	if !ok {
		return v
	}
	switch {
	case o.List != nil:
		out := make([]any, len(o.List))
		for i, it := range o.List {
			out[i] = plain(it)
		}
		return out
	case o.Value != nil:
		return plain(o.Value)
	default:
		return o.String()
	}
}
