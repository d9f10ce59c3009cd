package lazyre_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ndrbot/ndrbot/internal/lazyre"
)

func TestNew(t *testing.T) {
	re := lazyre.New(`^a(b+)$`)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { assert.Equal(t, []string{"abb", "bb"}, re().FindStringSubmatch("abb")) })
	}
	wg.Wait()
	assert.Same(t, re(), re(), "compiled once")

	bad := lazyre.New(`(`)
	assert.Panics(t, func() { bad() }, "a bad expression panics when first used, as MustCompile does")
}
