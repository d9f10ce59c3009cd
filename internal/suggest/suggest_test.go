package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"sender", "server", "window"}
	tests := []struct {
		got  string
		max  int
		want string
	}{
		{"sendr", 2, "sender"},
		{"SENDER", 2, "sender"},
		{"windw", 2, "window"},
		{"threshold", 2, ""},
		{"servr", 1, "server"},
	}
	for _, tc := range tests {
		if got := Closest(tc.got, known, tc.max); got != tc.want {
			t.Errorf("Closest(%q, %d) = %q, want %q", tc.got, tc.max, got, tc.want)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance = %d, want 3", d)
	}
}
