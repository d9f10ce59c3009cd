package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
)

// Some answers are decoded here rather than by the SDK's models:
//   - service health, because Graph writes its enums as "Incident" and
//     "ServiceRestored" (see testdata/servicehealth-issues.json) while the generated
//     parsers only know "incident" and "serviceRestored" and turn anything else into
//     nil — the classification and status would silently vanish;
//   - message trace, which has no request builder in msgraph-sdk-go v1.89.0.
// Both still go through the adapter (authentication, middleware, error mapping), as
// a RequestInformation whose body is read as bytes.

var errorMapping = abs.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue}

// maxPages bounds how many @odata.nextLink pages a check follows.
const maxPages = 50

// getBytes sends the request build makes (a fresh one per attempt) and returns the
// body.
func (e *Executor) getBytes(ctx context.Context, s *session, op string, build func() (*abs.RequestInformation, error)) ([]byte, callInfo, error) {
	var body []byte
	info, err := e.call(ctx, op, true, func(ctx context.Context) error {
		ri, err := build()
		if err != nil {
			return err
		}
		body, err = sendBytes(ctx, s.adapter, ri)
		return err
	})
	return body, info, err
}

// pageRequest builds a GET of an @odata.nextLink. Links must stay on the Graph host:
// the bearer token is never sent elsewhere, and a link that leads elsewhere is an
// error, not a silent unauthenticated request.
func (e *Executor) pageRequest(link string) func() (*abs.RequestInformation, error) {
	return func() (*abs.RequestInformation, error) {
		u, err := e.checkLink(link)
		if err != nil {
			return nil, err
		}
		ri := abs.NewRequestInformation()
		ri.Method = abs.GET
		ri.SetUri(*u)
		ri.Headers.TryAdd("Accept", "application/json")
		return ri, nil
	}
}

func (e *Executor) checkLink(link string) (*url.URL, error) {
	u, err := e.client.CheckLink(link)
	if err != nil {
		return nil, fmt.Errorf("next %w", err)
	}
	return u, nil
}

// page is the envelope of a Graph collection.
type page[T any] struct {
	Value     []T    `json:"value"`
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
}

func decodePage[T any](body []byte) (page[T], error) {
	var p page[T]
	if err := json.Unmarshal(body, &p); err != nil {
		return p, fmt.Errorf("decoding Graph's answer: %w", err)
	}
	return p, nil
}

// graphTimeValue reads Graph's DateTimeOffset values; one without a zone is UTC.
type graphTimeValue struct{ time.Time }

func (t *graphTimeValue) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil || s == "" {
		return err
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return fmt.Errorf("%q is not a Graph date-time", s)
}

// rfc3339 formats a time for output rows; the zero time is "".
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
