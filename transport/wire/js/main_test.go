package js_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The browser end-to-end tests live in the module under browser/, so that
// the library's module does not require chromedp.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
