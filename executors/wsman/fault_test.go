package wsman_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/winrm/winrmfake"
	"github.com/ndrbot/ndrbot/executors/wsman"
)

func TestParseFault(t *testing.T) {
	tests := []struct {
		fault                 winrmfake.Fault
		subcode, code, reason string
		is                    error
	}{
		{winrmfake.FaultQuota, "w:QuotaLimit", "2150859173", "The maximum number of concurrent shells for this user has been exceeded.", nil},
		{winrmfake.FaultTimedOut, "w:TimedOut", "2150858793", "within the time specified in OperationTimeout.", nil},
		{winrmfake.FaultAccessDenied, "w:AccessDenied", "5", "Access is denied.", executors.ErrAuth},
		{winrmfake.FaultInternal, "w:InternalError", "2147942606", "The filename or extension is too long.", nil},
	}
	for _, tt := range tests {
		t.Run(string(tt.fault), func(t *testing.T) {
			f := wsman.ParseFault(tt.fault.Body())
			require.NotNil(t, f)
			assert.Equal(t, tt.subcode, f.Subcode)
			assert.Equal(t, tt.code, f.Code)
			assert.Contains(t, f.Reason, tt.reason)
			assert.Contains(t, f.Error(), tt.subcode)
			if tt.is != nil {
				assert.ErrorIs(t, f, tt.is)
			} else {
				assert.False(t, errors.Is(f, executors.ErrAuth))
			}
		})
	}
	t.Run("a reply is no fault", func(t *testing.T) {
		assert.Nil(t, wsman.ParseFault(winrmfake.SignalResponse("uuid:1")))
	})
	t.Run("TimedOut keeps the word the library polls on", func(t *testing.T) {
		f := &wsman.FaultError{Subcode: "w:TimedOut", Reason: "Zeitüberschreitung"}
		assert.Contains(t, f.Error(), "OperationTimeout")
	})
}
