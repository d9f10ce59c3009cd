package entra

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/incident"
)

func TestKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		deadline  bool
		transient bool
		want      error
	}{
		{"no answer before the deadline", 0, true, false, executors.ErrTimeout},
		{"no answer (reset)", 0, false, true, executors.ErrUnreachable},
		{"401", 401, false, false, executors.ErrAuth},
		{"401 at the deadline is still auth", 401, true, false, executors.ErrAuth},
		{"403", 403, false, false, incident.ErrNotAllowed},
		{"404", 404, false, false, incident.ErrNotFound},
		{"429, transient", 429, false, true, incident.ErrUnavailable},
		{"503 stopped by the deadline", 503, true, true, incident.ErrUnavailable},
		{"500 the caller does not retry", 500, false, false, nil},
		{"400", 400, false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, Kind(tt.status, tt.deadline, tt.transient))
		})
	}
}

func TestChain(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	tests := []struct {
		name        string
		kind, cause error
		want        []error
	}{
		{"both", executors.ErrAuth, cause, []error{executors.ErrAuth, cause}},
		{"no kind", nil, cause, []error{cause}},
		{"no cause", incident.ErrNotFound, nil, []error{incident.ErrNotFound}},
		{"neither", nil, nil, []error{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, Chain(tt.kind, tt.cause))
		})
	}
}
