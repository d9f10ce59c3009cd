package graphfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func token(t *testing.T, s *Server, c *http.Client, host, secret string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {secret},
		"scope": {"https://graph.microsoft.com/.default openid"}}
	resp, err := c.PostForm("https://"+host+"/"+s.Tenant+"/oauth2/v2.0/token", form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

func TestFake(t *testing.T) {
	t.Parallel()
	s := New(t, WithClientSecret("right"))
	c := s.CloudClient()

	status, body := token(t, s, c, "login.microsoftonline.us", "wrong")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "invalid_client", body["error"])
	status, body = token(t, s, c, "login.microsoftonline.us", "right")
	require.Equal(t, http.StatusOK, status)
	bearer := body["access_token"].(string)

	get := func(rawURL string, auth bool) (*http.Response, map[string]any) {
		req, err := http.NewRequest(http.MethodGet, rawURL, nil)
		require.NoError(t, err)
		req.Header.Set("client-request-id", "crid-1")
		if auth {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp, m
	}

	resp, _ := get("https://graph.microsoft.us/v1.0/subscriptions", false)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "Graph wants the token")

	// Delta returns the requested fields, keeps $select across pages, and the
	// deltaLink continues from where the round ended.
	received := time.Date(2026, 5, 15, 0, 10, 0, 0, time.UTC)
	for i, id := range []string{"a", "b", "c"} {
		s.DeliverMessage("postmaster@contoso.com", "Inbox", Message{ID: id, Received: received.Add(time.Duration(i) * time.Minute),
			Fields: map[string]any{"subject": "Undeliverable: " + id, "bodyPreview": "550 5.5.4"}})
	}
	link := "https://graph.microsoft.us/v1.0/users/postmaster@contoso.com/mailFolders/inbox/messages/delta()?%24select=id,subject"
	var ids []string
	for range 5 {
		resp, page := get(link, true)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "crid-1", resp.Header.Get("client-request-id"))
		assert.NotEmpty(t, resp.Header.Get("request-id"))
		for _, v := range page["value"].([]any) {
			m := v.(map[string]any)
			ids = append(ids, m["id"].(string))
			assert.True(t, strings.HasPrefix(m["subject"].(string), "Undeliverable: "))
			assert.NotContains(t, m, "bodyPreview", "not selected")
		}
		if next, ok := page["@odata.nextLink"].(string); ok {
			link = next
			continue
		}
		link = page["@odata.deltaLink"].(string)
		break
	}
	assert.Equal(t, []string{"a", "b", "c"}, ids)
	s.Deliver("postmaster@contoso.com", "Inbox", "d", received.Add(time.Hour))
	_, page := get(link, true)
	require.Len(t, page["value"], 1)
	assert.Equal(t, "d", page["value"].([]any)[0].(map[string]any)["id"])

	// A fault that clears after two hits, then the route answers.
	s.AddFault(Fault{Path: "/subscriptions", Status: http.StatusTooManyRequests, RetryAfter: "2", Times: 2})
	for range 2 {
		resp, body := get("https://graph.microsoft.us/v1.0/subscriptions", true)
		assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		assert.Equal(t, "2", resp.Header.Get("Retry-After"))
		assert.Contains(t, body, "error")
	}
	resp, _ = get("https://graph.microsoft.us/v1.0/subscriptions", true)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	for _, r := range s.Requests() {
		assert.Contains(t, []string{"login.microsoftonline.us", "graph.microsoft.us"}, r.Host)
	}
}
