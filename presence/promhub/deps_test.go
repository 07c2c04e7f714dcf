package promhub_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDoesNotImportPrometheus: only this package pulls in
// client_golang; the hub, the core and the adapters do not.
func TestCoreDoesNotImportPrometheus(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	pkgs := []string{"../../presence", "../../fsm", "../../policy", "../../transport/...", "../nbiohandler"}
	out, err := exec.Command(goBin, append([]string{"list", "-deps"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "github.com/heartbeat-go/heartbeat/presence\n") {
		t.Fatalf("go list did not list the presence package:\n%s", out)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(line, "github.com/prometheus/") {
			t.Errorf("%s is imported by the core", line)
		}
	}
}
