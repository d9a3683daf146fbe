package cache_test

import (
	"testing"

	"github.com/logto-proxy/logto-proxy/cache/cachetest"
)

// Waited is what the HTTP layer turns into X-Cache: MISS, so it must be set
// on the read that found nothing in memory, and only on that one.
func TestCurrentReportsWaitingOnlyOnAColdRead(t *testing.T) {
	client, prefix := cachetest.Client(t)
	v := newView(t, client, prefix, newSource(50), newRecorder())
	ctx := testContext(t)
	cold, err := v.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !cold.Waited {
		t.Error("the first read of an empty view did not report Waited")
	}
	warm, err := v.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if warm.Waited {
		t.Error("a read served from memory reported Waited")
	}
}
