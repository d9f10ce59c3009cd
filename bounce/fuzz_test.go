package bounce

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse feeds Parse garbage around the samples' shapes: it must not panic,
// must answer a status or ErrNoStatus (ErrTooLarge past the limit) and
// nothing else, must hand back a consistent Bounce, and Choose on it must offer
// only candidates it was given, with values of their parameters' types.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		if filepath.Ext(p) == ".md" {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "\r", "550 5.5.4", "#< #5.5.4 smtp;550 5.5.4> #SMTP#", "Status code:\n",
		"Content-Type: multipart/report; boundary=x\n\n--x\nContent-Type: message/delivery-status\n\nStatus: 5.1.1\n--x--",
		"Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n",
		"Content-Transfer-Encoding: base64\nContent-Type: text/plain\n\n====",
		"<a@b.c>: host x[1.2.3.4] said:", "Remote Server returned '", "Original message headers:",
	} {
		f.Add([]byte(s))
	}
	cands := plannedCandidates()
	types := map[string]map[string]string{}
	for _, c := range cands {
		types[c.ID] = map[string]string{}
		for _, p := range c.Params {
			types[c.ID][p.Name] = p.Type
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Parse(data)
		switch {
		case len(data) > MaxSize:
			if !errors.Is(err, ErrTooLarge) || b != nil {
				t.Fatalf("over the limit: %v, %v", b, err)
			}
			return
		case err == nil:
			if b.Picked < 0 || b.Picked >= len(b.Recipients) {
				t.Fatalf("picked %d of %d", b.Picked, len(b.Recipients))
			}
			if b.Code() != b.Recipients[b.Picked].Code || b.Code() == (Code{}) {
				t.Fatalf("code %v, picked recipient's %v", b.Code(), b.Recipients[b.Picked].Code)
			}
			if _, ok := parseEnhanced(b.Status); b.Status != "" && !ok {
				t.Fatalf("status %q", b.Status)
			}
			if b.Reply != "" && !isReply(b.Reply) {
				t.Fatalf("reply %q", b.Reply)
			}
		case errors.Is(err, ErrNoStatus):
			if b == nil || b.Picked != -1 || b.Status != "" {
				t.Fatalf("no status but %+v", b)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		again, err2 := Parse(data)
		if !reflect.DeepEqual(b, again) || !errors.Is(err2, err) && err2 != err {
			t.Fatal("two parses of the same input differ")
		}
		sel := Choose(b, cands)
		if len(sel.Fits) > 0 && len(sel.Closest) > 0 {
			t.Fatal("closest offered beside fits")
		}
		for _, c := range append(sel.Fits, sel.Closest...) {
			ts, ok := types[c.ID]
			if !ok {
				t.Fatalf("offered %q, not a candidate", c.ID)
			}
			for name, v := range c.Params {
				if !fitsType(v, ts[name]) {
					t.Fatalf("%s: %s=%q is not of type %s", c.ID, name, v, ts[name])
				}
			}
		}
	})
}
