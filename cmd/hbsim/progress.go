package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress shows a count on stderr once a run has lasted about two
// seconds, and only when stderr is a terminal (never in CI logs or pipes).
type progress struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	start  time.Time
	total  int
	n      int
	shown  bool
	last   time.Time
	redraw time.Duration
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, tty: isTerminal(w), total: total, start: time.Now(), redraw: 100 * time.Millisecond}
}

// isTerminal reports whether w is a character device other than the null
// device, as a terminal is and a file, pipe, CI log or /dev/null is not.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if !p.tty || p.n >= p.total {
		return
	}
	now := time.Now()
	if !p.shown && now.Sub(p.start) < 2*time.Second || now.Sub(p.last) < p.redraw {
		return
	}
	p.shown, p.last = true, now
	const width = 30
	filled := width * p.n / p.total
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < filled {
			bar[i] = '='
		}
	}
	fmt.Fprintf(p.w, "\rsimulating %3d%% [%s] (%d/%d) %s ", 100*p.n/p.total, bar, p.n, p.total, now.Sub(p.start).Round(time.Second))
}

// finish clears the line it drew, so the report starts on a clean one.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprintf(p.w, "\r\033[K")
		p.shown = false
	}
}
