package browser_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// networkServiceRestart is the line Chromium logs when its network service
// process dies and it starts another. Every WebSocket and every load in
// flight of every page of that browser fails at that moment (the pages read
// close 1006 all at once), whatever the page or the server did: killing the
// process by hand reproduces it exactly.
const networkServiceRestart = "Network service crashed or was terminated"

// chromeLog reads a browser's stderr (started with --enable-logging=stderr)
// and keeps what explains a crash: the times of network-service restarts and
// the browser's own lines before each (page console lines left out).
type chromeLog struct {
	mu       sync.Mutex
	partial  []byte
	recent   []string // the last lines that are not page console output
	restarts []time.Time
	context  [][]string // recent, as it was at each restart
}

// logs maps each browser the tests started (its *chromedp.Browser) to its
// log.
var logs sync.Map

func (l *chromeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		if strings.Contains(line, ":CONSOLE") || strings.Contains(line, "dbus") || strings.HasSuffix(line, " <unknown>") {
			continue // page output; the session bus a container lacks; unsymbolized stack frames
		}
		if strings.Contains(line, networkServiceRestart) {
			l.restarts = append(l.restarts, time.Now())
			l.context = append(l.context, slices.Clone(l.recent))
		}
		l.recent = append(l.recent, line)
		if len(l.recent) > 40 {
			l.recent = l.recent[1:]
		}
	}
	return len(p), nil
}

// restartsSince reports the network-service restarts in these browser
// logs after start, each with the browser's lines before it.
func restartsSince(start time.Time, ls ...*chromeLog) []string {
	var out []string
	for _, l := range ls {
		if l == nil {
			continue
		}
		l.mu.Lock()
		for i, at := range l.restarts {
			if at.After(start) {
				out = append(out, fmt.Sprintf("at %s, after:\n\t%s", at.Format("15:04:05.000"), strings.Join(l.context[i], "\n\t")))
			}
		}
		l.mu.Unlock()
	}
	return out
}

// logOf returns the log of the browser of ctx, or nil.
func logOf(ctx context.Context) *chromeLog {
	if l, ok := logs.Load(chromedp.FromContext(ctx).Browser); ok {
		return l.(*chromeLog)
	}
	return nil
}

// attempt is a testing.TB for one run of a scenario whose failure the
// caller may still excuse: it records failures instead of failing the test
// (each is logged as it happens), and runs its own cleanups.
type attempt struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	skipped  string
	cleanups []func()
	logs     []*chromeLog // of the browsers the scenario started itself
}

func (a *attempt) fail(msg string) {
	a.TB.Helper()
	a.mu.Lock()
	a.failed = true
	a.mu.Unlock()
	a.TB.Log("attempt failed: " + msg)
}

func (a *attempt) Error(args ...any) { a.TB.Helper(); a.fail(fmt.Sprint(args...)) }
func (a *attempt) Errorf(format string, args ...any) {
	a.TB.Helper()
	a.fail(fmt.Sprintf(format, args...))
}
func (a *attempt) Fail()             { a.fail("Fail") }
func (a *attempt) FailNow()          { a.fail("FailNow"); runtime.Goexit() }
func (a *attempt) Fatal(args ...any) { a.TB.Helper(); a.fail(fmt.Sprint(args...)); runtime.Goexit() }
func (a *attempt) Fatalf(format string, args ...any) {
	a.TB.Helper()
	a.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (a *attempt) Skip(args ...any) { a.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (a *attempt) Skipf(format string, args ...any) {
	a.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (a *attempt) SkipNow() { a.skipped = "SkipNow"; runtime.Goexit() }

func (a *attempt) Failed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failed
}

func (a *attempt) Cleanup(f func()) {
	a.mu.Lock()
	a.cleanups = append(a.cleanups, f)
	a.mu.Unlock()
}

// runAttempt runs f as t would, on its own goroutine so that a Fatal ends
// only the attempt, and then its cleanups, last first. It reports whether f
// failed.
func runAttempt(t *testing.T, f func(testing.TB)) (failed bool, own []*chromeLog) {
	t.Helper()
	a := &attempt{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(a)
	}()
	<-done
	for i := len(a.cleanups) - 1; i >= 0; i-- {
		a.cleanups[i]()
	}
	if a.skipped != "" {
		t.Skip(a.skipped)
	}
	return a.Failed(), a.logs
}

// runScenario runs a browser scenario. If it fails while a browser's
// network service restarted (the shared browser's, or one the scenario
// started), which cuts every connection of that browser
// (a browser fault, not the library's), it logs the restart with the
// browser's lines before it and runs the scenario once more, in a browser
// of its own, where a failure fails the test. A failure with no restart
// fails the test at once.
func runScenario(t *testing.T, bctx context.Context, run func(testing.TB, context.Context)) {
	t.Helper()
	start := time.Now()
	failed, own := runAttempt(t, func(tb testing.TB) { run(tb, bctx) })
	if !failed {
		return
	}
	// Only the browsers this scenario used: the shared one and its own.
	restarts := restartsSince(start, append(own, logOf(bctx))...)
	if len(restarts) == 0 {
		t.Fatal("failed (above)")
	}
	t.Logf("the browser's network service restarted during this scenario, cutting every connection of the browser beneath it; running it again in a browser of its own. Restarts: %s", strings.Join(restarts, "\n"))
	run(t, browser(t, 3*time.Minute))
}

// TestNetworkServiceRestartIsSeen kills the network service of a browser of
// its own, as a crash would, and checks that the log reader sees the restart
// (else runScenario could never tell a browser fault) and that the page's
// socket is cut by it.
func TestNetworkServiceRestartIsSeen(t *testing.T) {
	bctx := browser(t, time.Minute)
	s := newServer(t)
	p := open(t, bctx, s.url("n", opts(nil)))
	p.until(5*time.Second, "alive", isAlive)
	pid := networkServicePID(t, chromedp.FromContext(bctx).Browser.Process().Pid)
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.until(5*time.Second, "connection cut", func(st pageStats) bool { return st.State != "alive" })
	deadline := time.Now().Add(5 * time.Second)
	for len(restartsSince(start, logOf(bctx))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the browser's network service was killed, but its log told no restart")
		}
		wait(bctx, 20*time.Millisecond)
	}
}

// networkServicePID finds the network service among the browser's children.
func networkServicePID(t *testing.T, browserPID int) int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at its end.
		_, rest, _ := strings.Cut(string(stat), ") ")
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(browserPID) {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmd, []byte("network.mojom.NetworkService")) {
			return pid
		}
	}
	t.Fatalf("no network service among the children of browser %d", browserPID)
	return 0
}
