package executors_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ndrbot/ndrbot/executors"
)

// A parameter binds as PowerShell binds it: any case, an unambiguous prefix,
// or a common parameter.
func TestCommandParam(t *testing.T) {
	c := executors.Command{Name: "Get-Queue", Params: []executors.Param{{Name: "Identity"}, {Name: "IncludeBookmark"}, {Name: "Server"}}}
	tests := []struct {
		arg       string
		want      string
		found     bool
		ambiguous []string
	}{
		{"Identity", "Identity", true, nil},
		{"identity", "Identity", true, nil},
		{"Serv", "Server", true, nil},
		{"Confirm", "Confirm", true, nil},
		{"I", "", false, []string{"Identity", "IncludeBookmark"}},
		{"ResultSise", "", false, nil},
	}
	for _, tc := range tests {
		p, found, ambiguous := c.Param(tc.arg)
		assert.Equal(t, tc.found, found, tc.arg)
		assert.Equal(t, tc.want, p.Name, tc.arg)
		assert.Equal(t, tc.ambiguous, ambiguous, tc.arg)
	}
}

// A check's fields are what encoding/json writes for its row types.
func TestRowFields(t *testing.T) {
	type inner struct {
		Code int
		Text string
	}
	type row struct {
		Domain  string
		ID      string `json:"Id,omitempty"`
		Secret  string `json:"-"`
		private string
		inner
	}
	type other struct{ Status string }
	_ = row{}.private
	assert.Equal(t, []string{"Code", "Domain", "Id", "Status", "Text"}, executors.RowFields(row{}, []other{}))
}
