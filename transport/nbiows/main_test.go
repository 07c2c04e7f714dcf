package nbiows

import (
	"testing"

	"github.com/lesismal/nbio/logging"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	logging.SetLevel(logging.LevelNone)
	// nbio's websocket package starts a default engine's worker pools at
	// init: those, and only those, predate the tests.
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}
