package main

import (
	"context"
	"log/slog"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/slack"
)

// newCheckpointer builds the audit checkpointer the configuration asks for (nil
// when store.checkpoints names no sink). poster is nil on the terminal: there
// the checkpoints go to the file only.
func newCheckpointer(cfg config.Config, heads audit.HeadSource, key []byte, poster *slack.Poster, log *slog.Logger) (*audit.Checkpointer, error) {
	cp := cfg.Store.Checkpoints
	sinks := map[string]audit.Sink{}
	if cp.File != "" {
		sinks["file"] = audit.FileSink{Path: cp.File}
	}
	if cp.Channel != "" && poster != nil {
		sinks["slack"] = audit.SinkFunc(func(ctx context.Context, c audit.Checkpoint) error {
			_, err := poster.Deliver(ctx, cp.Channel, "", "audit-checkpoint", "", slack.Rendered{Text: c.String()})
			return err
		})
	}
	if len(sinks) == 0 {
		return nil, nil
	}
	return audit.NewCheckpointer(heads, key, sinks, audit.CheckpointerOptions{Interval: cp.Interval, Log: log.With("component", "checkpoints")})
}
