package sdk_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/vigil-tsdb/vigil/internal/vigiltest"
)

// vigilAddr is the gRPC address of the real single node the examples talk
// to ("localhost:9095" in a default `make run`).
var vigilAddr string

// vigilHTTP is the same node's HTTP API.
var vigilHTTP string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "vigil-sdk-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	n, err := vigiltest.Start(dir, "-self-scrape.interval=0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdk examples: start vigil:", err)
		return 1
	}
	vigilAddr, vigilHTTP = n.GRPC, n.HTTP
	code := m.Run()
	if err := n.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "sdk examples: stop vigil:", err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "sdk: leaked goroutines:", err)
			code = 1
		}
	}
	return code
}
