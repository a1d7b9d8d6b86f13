package ring

import (
	"testing"

	"go.uber.org/goleak"
)

// goleak retries with backoff, which covers memberlist's listeners that exit
// shortly after Shutdown.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
