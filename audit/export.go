package audit

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strconv"
	"time"

	"github.com/ndrbot/ndrbot/incident"
)

// Export formats.
const (
	FormatJSONL = "jsonl"
	FormatCSV   = "csv"
)

// Export writes the events of src that pass f to w as JSON Lines or CSV and
// returns how many it wrote.
func Export(ctx context.Context, w io.Writer, src Source, f Filter, format string) (int64, error) {
	events := src.Events(ctx, f)
	switch format {
	case FormatJSONL, "":
		return WriteJSONL(w, events)
	case FormatCSV:
		return WriteCSV(w, events)
	default:
		return 0, fmt.Errorf("%w: export format %q (want jsonl or csv)", incident.ErrInvalidInput, format)
	}
}

// wireEvent is an Event as exported: time in TimeLayout, payload verbatim.
type wireEvent struct {
	Seq      int64           `json:"seq"`
	Time     string          `json:"time"`
	Actor    incident.Actor  `json:"actor"`
	RunID    string          `json:"run_id,omitempty"`
	Kind     Kind            `json:"kind"`
	Payload  json.RawMessage `json:"payload"`
	Alg      Alg             `json:"alg"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// MarshalJSON writes the export form: one object, time in TimeLayout.
func (e Event) MarshalJSON() ([]byte, error) {
	var b jsonBuf
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(toWire(e)); err != nil {
		return nil, err
	}
	return b.b[:len(b.b)-1], nil
}

// UnmarshalJSON reads the export form.
func (e *Event) UnmarshalJSON(data []byte) error {
	var w wireEvent
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return fmt.Errorf("event %d: time: %w", w.Seq, err)
	}
	*e = Event{Seq: w.Seq, Time: t.UTC(), Actor: w.Actor, RunID: w.RunID, Kind: w.Kind,
		Payload: w.Payload, Alg: w.Alg, PrevHash: w.PrevHash, Hash: w.Hash}
	return nil
}

type jsonBuf struct{ b []byte }

func (j *jsonBuf) Write(p []byte) (int, error) { j.b = append(j.b, p...); return len(p), nil }

func toWire(e Event) wireEvent {
	p := e.Payload
	if len(p) == 0 {
		p = json.RawMessage("null")
	}
	return wireEvent{Seq: e.Seq, Time: TimeUS(e.Time).Format(TimeLayout), Actor: e.Actor, RunID: e.RunID,
		Kind: e.Kind, Payload: p, Alg: e.Alg, PrevHash: e.PrevHash, Hash: e.Hash}
}

// WriteJSONL writes one JSON object per line (the fields of Event, time in
// TimeLayout); the output verifies with ReadJSONL + Verify.
func WriteJSONL(w io.Writer, events iter.Seq2[Event, error]) (int64, error) {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var n int64
	for e, err := range events {
		if err != nil {
			return n, err
		}
		if err := enc.Encode(toWire(e)); err != nil {
			return n, err
		}
		n++
	}
	return n, bw.Flush()
}

// CSVHeader is the first row WriteCSV writes.
var CSVHeader = []string{"seq", "time", "actor_id", "actor_name", "run_id", "kind", "payload", "alg", "prev_hash", "hash"}

// WriteCSV writes a header row and one row per event; payload is its JSON text.
func WriteCSV(w io.Writer, events iter.Seq2[Event, error]) (int64, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return 0, err
	}
	var n int64
	row := make([]string, len(CSVHeader))
	for e, err := range events {
		if err != nil {
			return n, err
		}
		row[0] = strconv.FormatInt(e.Seq, 10)
		row[1] = TimeUS(e.Time).Format(TimeLayout)
		row[2], row[3], row[4] = e.Actor.ID, e.Actor.Name, e.RunID
		row[5], row[6], row[7] = string(e.Kind), string(e.Payload), string(e.Alg)
		row[8], row[9] = e.PrevHash, e.Hash
		if err := cw.Write(row); err != nil {
			return n, err
		}
		n++
	}
	cw.Flush()
	return n, cw.Error()
}

// ReadJSONL streams events from JSON Lines written by WriteJSONL.
func ReadJSONL(r io.Reader) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		d := json.NewDecoder(bufio.NewReader(r))
		for {
			var e Event
			err := d.Decode(&e)
			if err == io.EOF {
				return
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// SeqSource adapts a one-shot event sequence (e.g. ReadJSONL of an export file)
// to Source; the filter is applied in memory. Events may be consumed once.
type SeqSource struct {
	Seq iter.Seq2[Event, error]
}

// Events yields the events of s that pass f.
func (s SeqSource) Events(_ context.Context, f Filter) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		n := 0
		for e, err := range s.Seq {
			if err != nil {
				yield(e, err)
				return
			}
			if !f.Match(e) {
				continue
			}
			if !yield(e, nil) {
				return
			}
			n++
			if f.Limit > 0 && n >= f.Limit {
				return
			}
		}
	}
}
