package store

import "time"

// Stats are the store's counts at one moment, for the metrics endpoint. They are
// the deployment's (every replica reads the same database), not one process's.
type Stats struct {
	// Runs counts runs by playbook and state.
	Runs map[RunKey]int
	// Approvals counts approval requests by status.
	Approvals map[string]int
	// Executions counts relief executions by relief and state.
	Executions map[ExecutionKey]int
	// OutboxPending is the number of chat posts not yet delivered (nor given up);
	// OldestPending is when the oldest of them was stored (zero when none).
	OutboxPending int
	OldestPending time.Time
}

// RunKey groups runs for Stats.
type RunKey struct{ Playbook, State string }

// ExecutionKey groups relief executions for Stats.
type ExecutionKey struct{ Relief, State string }
