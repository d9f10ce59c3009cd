package graph

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/admin"

	"github.com/ndrbot/ndrbot/executors"
)

// ServiceHealthIssue is one row of the service-health check: an incident or advisory
// Microsoft has posted for the service (GET /admin/serviceAnnouncement/issues,
// permission ServiceHealth.Read.All).
type ServiceHealthIssue struct {
	ID             string `json:"Id"`             // EX226792
	Title          string `json:"Title"`          // Limited number of users unable to send …
	Classification string `json:"Classification"` // incident | advisory
	// Status is Graph's serviceHealthStatus with a lower-case first letter:
	// investigating, serviceDegradation, serviceInterruption, restoringService,
	// extendedRecovery, verifyingService, serviceRestored, falsePositive, …
	Status            string `json:"Status"`
	Service           string `json:"Service"`
	Feature           string `json:"Feature"`
	StartDateTime     string `json:"StartDateTime"`
	LastModified      string `json:"LastModified"`
	EndDateTime       string `json:"EndDateTime"` // "" while it lasts
	ImpactDescription string `json:"ImpactDescription"`
	IsResolved        bool   `json:"IsResolved"`
}

// rawIssue is serviceHealthIssue as Graph writes it.
type rawIssue struct {
	ID                   string         `json:"id"`
	Title                string         `json:"title"`
	Classification       string         `json:"classification"`
	Status               string         `json:"status"`
	Service              string         `json:"service"`
	Feature              string         `json:"feature"`
	StartDateTime        graphTimeValue `json:"startDateTime"`
	EndDateTime          graphTimeValue `json:"endDateTime"`
	LastModifiedDateTime graphTimeValue `json:"lastModifiedDateTime"`
	ImpactDescription    string         `json:"impactDescription"`
	IsResolved           bool           `json:"isResolved"`
}

// serviceHealth lists the service's unresolved incidents and advisories.
//
// Params: service (default "Exchange Online"), include_resolved (default false).
func (e *Executor) serviceHealth(ctx context.Context, s *session, p map[string]any) ([]ServiceHealthIssue, error) {
	service, ok, err := stringParam(p, "service")
	if err != nil {
		return nil, err
	}
	if !ok {
		service = "Exchange Online"
	}
	if !serviceRE().MatchString(service) {
		return nil, invalid("parameter %q: %q is not a service name", "service", service)
	}
	resolved, err := executors.BoolParam(p, "include_resolved", false)
	if err != nil {
		return nil, err
	}
	filter := "service eq " + odataString(service)
	if !resolved {
		filter += " and isResolved eq false"
	}
	first := func() (*abs.RequestInformation, error) {
		b := admin.NewAdminRequestBuilderInternal(map[string]string{}, s.adapter).ServiceAnnouncement().Issues()
		return b.ToGetRequestInformation(context.Background(), &admin.ServiceAnnouncementIssuesRequestBuilderGetRequestConfiguration{
			QueryParameters: &admin.ServiceAnnouncementIssuesRequestBuilderGetQueryParameters{Filter: &filter},
		})
	}
	rows := []ServiceHealthIssue{}
	build := first
	for range maxPages {
		body, _, err := e.getBytes(ctx, s, "GET /admin/serviceAnnouncement/issues", build)
		if err != nil {
			return nil, err
		}
		pg, err := decodePage[rawIssue](body)
		if err != nil {
			return nil, err
		}
		for _, r := range pg.Value {
			// The filter is Graph's to apply; checked again in case it was not.
			if !strings.EqualFold(r.Service, service) || (r.IsResolved && !resolved) {
				continue
			}
			rows = append(rows, ServiceHealthIssue{
				ID: r.ID, Title: r.Title, Classification: strings.ToLower(r.Classification), Status: lowerFirst(r.Status),
				Service: r.Service, Feature: r.Feature, StartDateTime: rfc3339(r.StartDateTime.Time),
				LastModified: rfc3339(r.LastModifiedDateTime.Time), EndDateTime: rfc3339(r.EndDateTime.Time),
				ImpactDescription: r.ImpactDescription, IsResolved: r.IsResolved,
			})
		}
		if pg.NextLink == "" {
			break
		}
		build = e.pageRequest(pg.NextLink)
	}
	return rows, nil
}

// lowerFirst maps Graph's "ServiceDegradation" and "serviceDegradation" alike to the
// enum's documented spelling.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}
