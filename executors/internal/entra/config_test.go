package entra

import (
	"strings"
	"testing"
)

// graph_url and authority_url: https, plain http to loopback for graph_url only,
// no credentials, query or path on the authority.
func TestCheckGraphURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw       string
		authority bool
		ok        bool
	}{
		{"https://graph.microsoft.us", false, true},
		{"https://graph.microsoft.us/v1.0", false, true},
		{"http://localhost:8080", false, true},
		{"http://127.0.0.1:8080/v1.0", false, true},
		{"http://[::1]:8080", false, true},
		{"http://graph.microsoft.us", false, false},
		{"https://user:pw@graph.microsoft.us", false, false},
		{"https://graph.microsoft.us/?x=1", false, false},
		{"graph.microsoft.us", false, false},
		{"https://login.microsoftonline.us", true, true},
		{"https://login.microsoftonline.us/", true, true},
		{"https://127.0.0.1:8443", true, true},
		{"http://127.0.0.1:8443", true, false},
		{"https://login.microsoftonline.us/tenant", true, false},
	}
	for _, tt := range tests {
		msg := CheckURL(tt.raw, tt.authority)
		if (msg == "") != tt.ok {
			t.Errorf("CheckURL(%q, authority=%v) = %q, want ok=%v", tt.raw, tt.authority, msg, tt.ok)
		}
	}
	if msg := CheckURL("https://u:hunter2@graph.microsoft.us", false); strings.Contains(msg, "hunter2") {
		t.Errorf("message leaks the password: %s", msg)
	}
}
