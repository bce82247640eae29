package buffer

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv names the child program the test binary runs when re-executed by a test (see
// crash_test.go); its value is the buffer file.
const childEnv = "FLOORLINK_BUFFER_TEST_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		os.Exit(child(os.Getenv(childEnv+"_MODE"), path))
	}
	goleak.VerifyTestMain(m)
}
