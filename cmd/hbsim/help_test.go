package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestHelpPrintsEveryFlag(t *testing.T) {
	err := run([]string{"-h"}, io.Discard, io.Discard)
	var help helpRequested
	if !errors.As(err, &help) {
		t.Fatalf("-h: %v", err)
	}
	for _, f := range []string{"-profile", "-policy", "-scenario", "-conns", "-duration", "-seed", "-json", "-plot", "-trace", "-link", "-latency", "-jitter", "-loss", "-burst"} {
		if !strings.Contains(string(help), "  "+f+" ") && !strings.Contains(string(help), "  "+f+"\n") {
			t.Errorf("usage lacks %s", f)
		}
	}
}
