package browser_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// browserParallel is how many browser scenarios run at once unless
// -test.parallel says otherwise. They mostly wait on the wall clock (a
// backoff, a dead timeout), so they overlap well beyond the core count
// that -test.parallel defaults to.
const browserParallel = 16

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", fmt.Sprint(browserParallel)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	goleak.VerifyTestMain(m)
}
