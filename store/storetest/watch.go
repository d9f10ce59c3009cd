package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

const watchKey = "postmaster@contoso.com/inbox"

// ndr is a watch message with one event per "code domain" pair.
func ndr(id string, at time.Time, pairs ...string) store.WatchMessage {
	m := store.WatchMessage{ID: id, Received: at}
	for i := 0; i+1 < len(pairs); i += 2 {
		m.Events = append(m.Events, store.NDREvent{Code: pairs[i], Domain: pairs[i+1], Recipient: "user" + fmt.Sprint(i) + "@" + pairs[i+1]})
	}
	return m
}

func ids(ms []store.WatchMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func testWatch(t *testing.T, open Opener) {
	t.Run("a v1 database is migrated to v2", func(t *testing.T) {
		inst := open(t, store.Options{})
		r := newRun(t, inst.Store, "bot-1")
		// Back to v1: what a database written before the watch existed looks like.
		for _, table := range []string{"watch_cursors", "watch_messages", "ndr_events", "watch_alert_heads", "watch_alerts", "watch_subscriptions"} {
			inst.Exec(t, "DROP TABLE "+table)
		}
		// And before the claim guards (v3): migrating re-applies both.
		inst.Exec(t, `DROP INDEX execution_hosts_host`)
		inst.Exec(t, `ALTER TABLE approvals DROP COLUMN cooldown_us`)
		// And before v4 (roles at claim, key epoch, replay cache).
		inst.Exec(t, `DROP TABLE slack_requests`)
		for _, col := range []string{"approvals DROP COLUMN role", "votes DROP COLUMN role", "audit_head DROP COLUMN key_id", "audit_head DROP COLUMN key_since"} {
			inst.Exec(t, "ALTER TABLE "+col)
		}
		// And before v5 (named leases).
		inst.Exec(t, `DROP TABLE work_leases`)
		inst.Exec(t, `DELETE FROM schema_version WHERE version IN (2, 3, 4, 5)`)
		s, err := inst.Reopen(t, store.Options{})
		require.NoError(t, err)
		defer s.Close()
		ctx := ctxT(t)
		_, err = s.GetRun(ctx, r.ID)
		require.NoError(t, err, "v1 data is kept")
		got, err := s.RecordWatchMessages(ctx, watchKey, []store.WatchMessage{ndr("m1", t0, "5.5.4", "fabrikam.com")})
		require.NoError(t, err)
		assert.Len(t, got, 1)
		l, err := s.TryLease(ctx, "ndr-watch", "bot-1", time.Minute, t0)
		require.NoError(t, err)
		assert.True(t, l.Held, "v5's lease table is there")
	})

	t.Run("messages are recorded once and counted per code", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)

		got, err := s.RecordWatchMessages(ctx, watchKey, []store.WatchMessage{
			ndr("m1", t0, "5.5.4", "fabrikam.com"),
			ndr("m2", t0.Add(time.Minute), "5.5.4", "Northwind.example", "5.5.4", "tailspin.example"), // two recipients, one NDR
			ndr("m3", t0.Add(2*time.Minute), "4.3.2", "fabrikam.com"),
			{ID: "m4", Received: t0.Add(2 * time.Minute)}, // not an NDR
			ndr("m1", t0, "5.5.4", "fabrikam.com"),        // twice in one batch
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"m1", "m2", "m3", "m4"}, ids(got))

		// A replay (a delta round seen again, a message marked read) adds nothing.
		got, err = s.RecordWatchMessages(ctx, watchKey, []store.WatchMessage{
			ndr("m2", t0.Add(time.Minute), "5.5.4", "northwind.example"),
			ndr("m5", t0.Add(3*time.Minute), "5.5.4", "fabrikam.com"),
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"m5"}, ids(got))

		// The same id in another watch is another message.
		got, err = s.RecordWatchMessages(ctx, "journal@contoso.com/inbox", []store.WatchMessage{ndr("m1", t0, "5.5.4", "fabrikam.com")})
		require.NoError(t, err)
		assert.Len(t, got, 1)

		counts, err := s.NDRCounts(ctx, watchKey, t0, t0.Add(5*time.Minute))
		require.NoError(t, err)
		require.Len(t, counts, 2)
		assert.Equal(t, store.NDRCount{Code: "5.5.4", Messages: 3, Domains: 3, First: t0, Last: t0.Add(3 * time.Minute)}, counts[0])
		assert.Equal(t, "4.3.2", counts[1].Code)
		assert.Equal(t, 1, counts[1].Messages)

		// The window is [since, until).
		counts, err = s.NDRCounts(ctx, watchKey, t0.Add(time.Minute), t0.Add(3*time.Minute))
		require.NoError(t, err)
		require.Len(t, counts, 2)
		assert.Equal(t, 1, counts[0].Messages)

		top, err := s.NDRTopDomains(ctx, watchKey, "5.5.4", t0, t0.Add(5*time.Minute), 2)
		require.NoError(t, err)
		assert.Equal(t, []store.DomainCount{{Domain: "fabrikam.com", Messages: 2}, {Domain: "northwind.example", Messages: 1}}, top,
			"busiest first, domains lower-cased")

		_, err = s.RecordWatchMessages(ctx, watchKey, []store.WatchMessage{{ID: ""}})
		assert.ErrorIs(t, err, incident.ErrInvalidInput)
		_, err = s.RecordWatchMessages(ctx, watchKey, []store.WatchMessage{{ID: "x", Events: []store.NDREvent{{Domain: "a.example"}}}})
		assert.ErrorIs(t, err, incident.ErrInvalidInput)

		// Retention: older messages and their events are forgotten.
		n, err := s.PruneWatch(ctx, watchKey, t0.Add(90*time.Second))
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		counts, err = s.NDRCounts(ctx, watchKey, t0, t0.Add(5*time.Minute))
		require.NoError(t, err)
		byCode := map[string]int{}
		for _, c := range counts {
			byCode[c.Code] = c.Messages
		}
		assert.Equal(t, map[string]int{"4.3.2": 1, "5.5.4": 1}, byCode, "m3 (4.3.2) and m5 (5.5.4) remain")
	})

	t.Run("cursor and counts survive a restart", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)
		c, err := s.WatchCursor(ctx, watchKey)
		require.NoError(t, err)
		assert.Empty(t, c)
		_, err = s.RecordWatchMessages(ctx, watchKey, []store.WatchMessage{ndr("m1", t0, "5.5.4", "fabrikam.com")})
		require.NoError(t, err)
		link := "https://graph.microsoft.com/v1.0/users/postmaster@contoso.com/mailFolders/inbox/messages/delta()?$deltatoken=abc"
		require.NoError(t, s.SetWatchCursor(ctx, watchKey, link+"1"))
		require.NoError(t, s.SetWatchCursor(ctx, watchKey, link))

		s2, err := inst.Reopen(t, store.Options{})
		require.NoError(t, err)
		defer s2.Close()
		c, err = s2.WatchCursor(ctx, watchKey)
		require.NoError(t, err)
		assert.Equal(t, link, c)
		got, err := s2.RecordWatchMessages(ctx, watchKey, []store.WatchMessage{ndr("m1", t0, "5.5.4", "fabrikam.com")})
		require.NoError(t, err)
		assert.Empty(t, got, "the restarted store knows m1")
		counts, err := s2.NDRCounts(ctx, watchKey, t0.Add(-time.Minute), t0.Add(time.Minute))
		require.NoError(t, err)
		require.Len(t, counts, 1)
		assert.Equal(t, 1, counts[0].Messages)
	})

	t.Run("one alert per cooldown, across replicas", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)
		s2, err := inst.Reopen(t, store.Options{})
		require.NoError(t, err)
		defer s2.Close()

		alert := func(code string, at time.Time) store.NewWatchAlert {
			return store.NewWatchAlert{Watch: watchKey, Code: code, Channel: "C0ESC", Button: code, Messages: 37, Domains: 12,
				View: json.RawMessage(`{"code":"` + code + `"}`), At: at}
		}
		// 20 goroutines on two replicas cross the threshold together: one alert.
		var created atomic.Int32
		var wg sync.WaitGroup
		ids := make([]string, 20)
		for i := range 20 {
			st := s
			if i%2 == 1 {
				st = s2
			}
			wg.Go(func() {
				a, ok, err := st.ClaimWatchAlert(ctx, alert("5.5.4", t0.Add(time.Duration(i)*time.Millisecond)), 30*time.Minute)
				assert.NoError(t, err)
				if ok {
					created.Add(1)
				}
				ids[i] = a.ID
			})
		}
		wg.Wait()
		require.EqualValues(t, 1, created.Load(), "exactly one claim creates the alert")
		for _, id := range ids {
			assert.Equal(t, ids[0], id, "every loser sees the winning alert")
		}

		first, err := s.GetWatchAlert(ctx, ids[0])
		require.NoError(t, err)
		assert.Regexp(t, `^wa-\d{8}-[0-9a-f]{10}$`, first.ID)
		assert.Equal(t, 37, first.Messages)
		assert.JSONEq(t, `{"code":"5.5.4"}`, string(first.View))
		assert.True(t, first.PostedAt.IsZero())

		// Within the cooldown: the same alert; another code is its own storm.
		a, ok, err := s.ClaimWatchAlert(ctx, alert("5.5.4", t0.Add(29*time.Minute)), 30*time.Minute)
		require.NoError(t, err)
		assert.False(t, ok)
		assert.Equal(t, first.ID, a.ID)
		_, ok, err = s.ClaimWatchAlert(ctx, alert("4.4.0", t0.Add(29*time.Minute)), 30*time.Minute)
		require.NoError(t, err)
		assert.True(t, ok)
		// After it: a new alert.
		later, ok, err := s.ClaimWatchAlert(ctx, alert("5.5.4", t0.Add(31*time.Minute)), 30*time.Minute)
		require.NoError(t, err)
		assert.True(t, ok)
		assert.NotEqual(t, first.ID, later.ID)
		assert.Len(t, events(t, s, store.KindWatchAlert, "code", "5.5.4"), 2, "each alert audited once")

		all, err := s.WatchAlerts(ctx, watchKey, t0)
		require.NoError(t, err)
		assert.Len(t, all, 3)

		require.NoError(t, s.MarkWatchAlertPosted(ctx, first.ID))
		require.NoError(t, s.MarkWatchAlertPosted(ctx, first.ID), "marking twice is harmless")
		assert.ErrorIs(t, s.MarkWatchAlertPosted(ctx, "wa-nope"), incident.ErrNotFound)
		got, err := s.GetWatchAlert(ctx, first.ID)
		require.NoError(t, err)
		assert.False(t, got.PostedAt.IsZero())
		_, err = s.GetWatchAlert(ctx, "wa-nope")
		assert.ErrorIs(t, err, incident.ErrNotFound)

		_, _, err = s.ClaimWatchAlert(ctx, store.NewWatchAlert{Watch: watchKey, Code: "5.5.4"}, time.Minute)
		assert.ErrorIs(t, err, incident.ErrInvalidInput, "an alert needs a channel")
		assert.True(t, verify(t, s, nil).OK)
	})

	t.Run("a button is checked against the alert and claimed once", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)
		old, _, err := s.ClaimWatchAlert(ctx, store.NewWatchAlert{Watch: watchKey, Code: "5.5.4", Channel: "C0ESC", Button: "5.5.4", At: t0}, time.Minute)
		require.NoError(t, err)
		a, _, err := s.ClaimWatchAlert(ctx, store.NewWatchAlert{Watch: watchKey, Code: "5.5.4", Channel: "C0ESC", Button: "5.5.4", At: t0.Add(time.Hour)}, time.Minute)
		require.NoError(t, err)
		_, _, err = s.ClaimWatchAlert(ctx, store.NewWatchAlert{Watch: watchKey, Code: "4.4.7", Channel: "C0ESC", At: t0}, time.Minute)
		require.NoError(t, err)

		found, err := s.FindWatchAlert(ctx, "C0ESC", "5.5.4")
		require.NoError(t, err)
		assert.Equal(t, a.ID, found.ID, "the latest alert with that button")
		assert.NotEqual(t, old.ID, found.ID)
		for _, tc := range []struct{ channel, button string }{{"C0OTHER", "5.5.4"}, {"C0ESC", "5.1.1"}, {"C0ESC", ""}} {
			_, err := s.FindWatchAlert(ctx, tc.channel, tc.button)
			assert.ErrorIs(t, err, incident.ErrNotFound, "%+v", tc)
		}

		var wins atomic.Int32
		var wg sync.WaitGroup
		for _, who := range []incident.Actor{alice, bob, carol, alice, bob} {
			wg.Go(func() {
				_, ok, err := s.ClaimAlertDiagnosis(ctx, a.ID, who)
				assert.NoError(t, err)
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		assert.EqualValues(t, 1, wins.Load())
		got, ok, err := s.ClaimAlertDiagnosis(ctx, a.ID, carol)
		require.NoError(t, err)
		assert.False(t, ok)
		assert.NotEmpty(t, got.DiagnosisBy.ID, "the loser learns who started it")
		assert.False(t, got.DiagnosisAt.IsZero())
		assert.Len(t, events(t, s, store.KindWatchDiagnosis, "alert", a.ID), 1)
		_, _, err = s.ClaimAlertDiagnosis(ctx, "wa-nope", alice)
		assert.ErrorIs(t, err, incident.ErrNotFound)
	})

	t.Run("subscription record", func(t *testing.T) {
		inst := open(t, store.Options{})
		s, ctx := inst.Store, ctxT(t)
		_, err := s.WatchSubscription(ctx, watchKey)
		assert.ErrorIs(t, err, incident.ErrNotFound)

		sub := store.WatchSubscription{Watch: watchKey, SubscriptionID: "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
			Resource: "users/postmaster@contoso.com/mailFolders('inbox')/messages", ExpiresAt: t0.Add(70 * time.Hour),
			State: store.SubscriptionActive, RenewedAt: t0}
		require.NoError(t, s.PutWatchSubscription(ctx, sub))
		require.NoError(t, s.PutWatchSubscription(ctx, sub), "unchanged: not audited again")
		sub.State, sub.Failures, sub.LastError = store.SubscriptionFailing, 1, "503 ServiceUnavailable Bearer abcdefghijklmnop"
		require.NoError(t, s.PutWatchSubscription(ctx, sub))
		sub.Failures = 2
		require.NoError(t, s.PutWatchSubscription(ctx, sub), "another failure in the same state: not audited again")

		s2, err := inst.Reopen(t, store.Options{})
		require.NoError(t, err)
		defer s2.Close()
		got, err := s2.WatchSubscription(ctx, watchKey)
		require.NoError(t, err)
		assert.Equal(t, sub.SubscriptionID, got.SubscriptionID)
		assert.Equal(t, store.SubscriptionFailing, got.State)
		assert.Equal(t, 2, got.Failures)
		assert.True(t, got.ExpiresAt.Equal(sub.ExpiresAt))
		assert.NotContains(t, got.LastError, "abcdefghijklmnop", "errors are redacted")
		assert.Len(t, events(t, s2, store.KindWatchSubscription, "", ""), 2)

		sub.State = "bogus"
		assert.ErrorIs(t, s.PutWatchSubscription(ctx, sub), incident.ErrInvalidInput)
		assert.True(t, verify(t, s2, nil).OK)
	})
}
