// Package lazyre holds regular expressions that are compiled when first used.
//
// Every ndrbot process links every package, and most of its commands use few
// of their regular expressions: one compiled in a package variable's
// initialiser is paid for by every start-up, `ndrbot --version` included.
package lazyre

import (
	"regexp"
	"sync"
)

// New returns expr compiled on the first call, as regexp.MustCompile compiles
// it (a bad expression panics then); it is safe for concurrent use.
func New(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
