// Package suggest finds the name a user probably meant, for "did you mean …?".
package suggest

import "strings"

// Closest returns the candidate nearest to got (case-insensitive edit distance)
// when it is within maxDistance; ties go to the alphabetically first.
func Closest(got string, candidates []string, maxDistance int) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := Distance(strings.ToLower(got), strings.ToLower(c))
		if best == "" || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > maxDistance {
		return ""
	}
	return best
}

// Distance is the Levenshtein distance over bytes (names and keys are ASCII).
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
