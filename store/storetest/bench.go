package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/store"
)

// batchAppender is implemented by the backends (core.Store.AppendBatch).
type batchAppender interface {
	AppendBatch(ctx context.Context, recs []audit.Record) ([]audit.Event, error)
}

// stepRecord is a typical audit event: a finished diagnostic step.
func stepRecord(i int) audit.Record {
	return audit.Record{Actor: incident.BotActor, RunID: "r-20261123-1517f9c3a2", Kind: audit.KindStep,
		Payload: map[string]any{"step": "queues", "phase": "diagnose", "title": "Connector queue depth", "target": "exchange",
			"executor": "winrm", "hosts": []string{"ex01.contoso.com", "ex02.contoso.com"}, "status": "ok", "exit_code": 0,
			"script_digest": "sha256:9f2c4b1e0d7a6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b", "duration": "1.532s",
			"duration_ms": 1532, "rows": i % 17, "error": ""}}
}

// Bench measures durable audit appends (one writer, eight concurrent writers) and
// Verify over 100 000 stored events. Each append is its own committed transaction.
func Bench(b *testing.B, open Opener) {
	b.Run("Append/1writer", func(b *testing.B) {
		s := open(b, store.Options{}).Store
		ctx := context.Background()
		i := 0
		for b.Loop() {
			if _, err := s.Append(ctx, stepRecord(i)); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	// The floor: the same row inserted by a plain INSERT (its own committed
	// statement) into a table of the same shape, timed alternately with Append so
	// the machine's noise moves both alike. x-insert is Append's speed as a
	// fraction of the plain insert's.
	b.Run("Append/vs-insert", func(b *testing.B) {
		inst := open(b, store.Options{})
		inst.Exec(b, `CREATE TABLE bench_floor (seq BIGINT PRIMARY KEY, ts_us BIGINT NOT NULL, actor_id TEXT NOT NULL,
			actor_name TEXT NOT NULL, run_id TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL, alg TEXT NOT NULL,
			prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`)
		ctx := context.Background()
		var appendT, insertT time.Duration
		i := 0
		for b.Loop() {
			t0 := time.Now()
			e, err := inst.Store.Append(ctx, stepRecord(i))
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			inst.Exec(b, `INSERT INTO bench_floor (seq, ts_us, actor_id, actor_name, run_id, kind, payload, alg, prev_hash, hash)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, e.Seq, e.Time.UnixMicro(), e.Actor.ID, e.Actor.Name, e.RunID,
				string(e.Kind), string(e.Payload), string(e.Alg), e.PrevHash, e.Hash)
			appendT, insertT = appendT+t1.Sub(t0), insertT+time.Since(t1)
			i++
		}
		b.ReportMetric(float64(b.N)/appendT.Seconds(), "appends/s")
		b.ReportMetric(float64(b.N)/insertT.Seconds(), "inserts/s")
		b.ReportMetric(insertT.Seconds()/appendT.Seconds(), "x-insert")
	})
	b.Run("Append/8writers", func(b *testing.B) {
		s := open(b, store.Options{}).Store
		ctx := context.Background()
		var next atomic.Int64
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(b.N) {
						return
					}
					if _, err := s.Append(ctx, stepRecord(int(i))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
	b.Run("Verify/100k", func(b *testing.B) {
		s := open(b, store.Options{}).Store
		Populate(b, s, 100_000)
		ctx := context.Background()
		b.ResetTimer()
		for b.Loop() {
			rep, err := audit.Verify(ctx, s, nil)
			if err != nil || !rep.OK || rep.Events != 100_000 {
				b.Fatal(err, rep)
			}
		}
		b.ReportMetric(100_000*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// Populate appends n step events in batches of 1000.
func Populate(tb testing.TB, s store.Store, n int) {
	ba, ok := s.(batchAppender)
	if !ok {
		tb.Fatalf("%T has no AppendBatch", s)
	}
	for done := 0; done < n; {
		k := min(1000, n-done)
		recs := make([]audit.Record, k)
		for i := range recs {
			recs[i] = stepRecord(done + i)
		}
		if _, err := ba.AppendBatch(context.Background(), recs); err != nil {
			tb.Fatal(fmt.Errorf("populate: %w", err))
		}
		done += k
	}
}
