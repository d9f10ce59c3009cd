package audit

import (
	"context"
	"encoding/json"
	"iter"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendTimeIsTimeLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), // past the fast path: AppendFormat's own answer
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for range 10000 {
		times = append(times, time.UnixMicro(rng.Int64N(253402300799000000)).UTC())
	}
	for _, tm := range times {
		assert.Equal(t, tm.AppendFormat(nil, TimeLayout), appendTime(nil, tm), "%v", tm)
	}
}

type events []Event

func (es events) Events(context.Context, Filter) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		for _, e := range es {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// A payload whose bytes are not canonical (re-spaced by an export tool) misses
// the stored-bytes path and verifies through Encode; an edited one fails both.
func TestVerifyFallsBackToCanonicalForm(t *testing.T) {
	e := Event{Seq: 1, Time: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Kind: KindCommand, Payload: json.RawMessage(`{"b":1,"a":"x"}`)}
	require.NoError(t, Seal(&e, Genesis, nil))
	assert.True(t, newStoredHasher(nil).matches(e))

	respaced := e
	respaced.Payload = json.RawMessage(`{ "a": "x", "b": 1 }`)
	assert.False(t, newStoredHasher(nil).matches(respaced))
	rep, err := Verify(context.Background(), events{respaced}, nil)
	require.NoError(t, err)
	assert.True(t, rep.OK, rep.String())

	edited := e
	edited.Payload = json.RawMessage(`{"a":"y","b":1}`)
	rep, err = Verify(context.Background(), events{edited}, nil)
	require.NoError(t, err)
	assert.Equal(t, ReasonAltered, rep.Reason)
}
