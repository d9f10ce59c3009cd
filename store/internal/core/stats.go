package core

import (
	"context"
	"database/sql"
	"time"

	"github.com/ndrbot/ndrbot/store"
)

// Stats counts runs, approvals, relief executions and the outbox's backlog —
// four grouped reads, cheap enough for every metrics scrape.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	st := store.Stats{Runs: map[store.RunKey]int{}, Approvals: map[string]int{}, Executions: map[store.ExecutionKey]int{}}
	count := func(q string, add func(a, b string, n int)) error {
		rows, err := s.db.Query(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a, b string
			var n int
			if err := rows.Scan(&a, &b, &n); err != nil {
				return err
			}
			add(a, b, n)
		}
		return rows.Err()
	}
	if err := count(`SELECT playbook, state, COUNT(*) FROM runs GROUP BY playbook, state`, func(a, b string, n int) {
		st.Runs[store.RunKey{Playbook: a, State: b}] = n
	}); err != nil {
		return st, err
	}
	if err := count(`SELECT status, '', COUNT(*) FROM approvals GROUP BY status`, func(a, _ string, n int) { st.Approvals[a] = n }); err != nil {
		return st, err
	}
	if err := count(`SELECT relief_id, state, COUNT(*) FROM executions GROUP BY relief_id, state`, func(a, b string, n int) {
		st.Executions[store.ExecutionKey{Relief: a, State: b}] = n
	}); err != nil {
		return st, err
	}
	var oldest sql.NullInt64
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*), MIN(created_us) FROM outbox WHERE state = 'pending'`).Scan(&st.OutboxPending, &oldest); err != nil {
		return st, err
	}
	if oldest.Valid {
		st.OldestPending = time.UnixMicro(oldest.Int64).UTC()
	}
	return st, nil
}
