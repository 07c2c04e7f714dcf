package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
)

// Bounds of the steps of a measurement.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 30 * time.Second
	// dialTimeout bounds opening all connections: far above the 10 to 20 s
	// 19,000 take on a busy 2-core machine.
	dialTimeout = 10 * time.Minute
	// registerTimeout bounds the wait for the server to count every
	// connection the client opened.
	registerTimeout = 30 * time.Second
	// defaultClientPing is how often the default client pings an idle line
	// (policy.DefaultAdaptiveInterval's idle gap).
	defaultClientPing = 5 * time.Second
)

// row is the measurement of one server.
type row struct {
	Server string `json:"server"`
	// Deadlines is how many timer-wheel deadlines the hub fired over the
	// window (0 for chat).
	Deadlines uint64 `json:"deadlines"`
	Conns     int    `json:"conns"`
	// Open is how many connections the client still held at the end of
	// the window; ServerConns how many the server counted after settling.
	Open        int `json:"open"`
	Dropped     int `json:"dropped"` // connections the client saw end
	ServerConns int `json:"server_conns"`

	RSSBase      uint64 `json:"rss_base"`
	RSSConnected uint64 `json:"rss_connected"` // after settling
	RSSEnd       uint64 `json:"rss_end"`       // after the window
	HeapBase     uint64 `json:"heap_base"`
	HeapEnd      uint64 `json:"heap_end"`
	StackBase    uint64 `json:"stack_base"`
	StackEnd     uint64 `json:"stack_end"`
	GorBase      int    `json:"goroutines_base"`
	GorEnd       int    `json:"goroutines_end"`

	// Pings the clients received from the server over the window, and
	// pongs in answer to their own pings.
	Pings int64 `json:"pings"`
	Pongs int64 `json:"pongs"`

	// utime and stime over the window, in 1/100 s. On loopback a write's
	// system time includes delivering it to the client.
	UserTicks uint64        `json:"user_ticks"`
	SysTicks  uint64        `json:"sys_ticks"`
	Window    time.Duration `json:"window_ns"`
	LoadFrom  string        `json:"load_from"` // /proc/loadavg as the window began
	LoadTo    string        `json:"load_to"`

	// Derived figures, per connection, and the server's CPU as a percentage
	// of one core.
	RSSPerConn       float64 `json:"rss_per_conn"`
	HeapPerConn      float64 `json:"heap_per_conn"`
	StackPerConn     float64 `json:"stack_per_conn"`
	GoroutinesPerCon float64 `json:"goroutines_per_conn"`
	CPUPercent       float64 `json:"cpu_percent"`
	UserPercent      float64 `json:"user_percent"`
	// Heartbeat frames the server wrote per connection per minute.
	PingsPerConnMin float64 `json:"pings_per_conn_min"`
	PongsPerConnMin float64 `json:"pongs_per_conn_min"`

	// Under load (-echo): messages the clients received per connection
	// per second, the p99 of the hub's deadline lateness over the window
	// (the bound of the bucket it falls in), and the suspect or dead
	// verdicts over the window.
	Echo         float64       `json:"echo"`
	TLS          bool          `json:"tls"`
	EchoesPerSec float64       `json:"echoes_per_conn_s"`
	LatenessP99  time.Duration `json:"lateness_p99_ns"`
	LateFirings  uint64        `json:"late_firings"`
	Verdicts     uint64        `json:"verdicts"`
	echoes       int64

	pids []int // the server's and the client's
}

func (r *row) derive() {
	n := float64(r.Conns)
	per := func(end, base uint64) float64 { return (float64(end) - float64(base)) / n }
	r.RSSPerConn = per(r.RSSEnd, r.RSSBase)
	r.HeapPerConn = per(r.HeapEnd, r.HeapBase)
	r.StackPerConn = per(r.StackEnd, r.StackBase)
	r.GoroutinesPerCon = float64(r.GorEnd-r.GorBase) / n
	r.CPUPercent = float64(r.UserTicks+r.SysTicks) / clockTicks / r.Window.Seconds() * 100
	r.UserPercent = float64(r.UserTicks) / clockTicks / r.Window.Seconds() * 100
	r.PingsPerConnMin = float64(r.Pings) / n / r.Window.Minutes()
	r.PongsPerConnMin = float64(r.Pongs) / n / r.Window.Minutes()
	r.EchoesPerSec = float64(r.echoes) / n / r.Window.Seconds()
}

// p99 returns the upper bound of the lateness bucket holding the 99th
// percentile of the firings counted from a to b (presence.LatenessBuckets;
// -1 for the last, unbounded one), and how many firings there were.
func p99(a, b []uint64) (time.Duration, uint64) {
	if len(a) != len(b) || len(b) == 0 {
		return 0, 0
	}
	var total uint64
	for i := range b {
		total += b[i] - a[i]
	}
	if total == 0 {
		return 0, 0
	}
	want := (total*99 + 99) / 100
	var n uint64
	for i := range b {
		n += b[i] - a[i]
		if n >= want {
			if i < len(presence.LatenessBuckets) {
				return presence.LatenessBuckets[i], total
			}
			return -1, total
		}
	}
	return -1, total
}

// report is a whole run.
type report struct {
	Conns  int           `json:"conns"`
	Window time.Duration `json:"window_ns"`
	Settle time.Duration `json:"settle_ns"`
	Spread time.Duration `json:"spread_ns"`
	Rows   []row         `json:"rows"`
}

// measure runs each server with its client in turn.
func measure(o options, exe string, logw io.Writer) (*report, error) {
	if err := raiseFileLimit(); err != nil {
		return nil, err
	}
	if lim := fileLimit(); lim != 0 && uint64(o.conns)+100 > lim {
		return nil, usagef("-conns %d needs more files than the open-file limit %d allows (ulimit -Hn)", o.conns, lim)
	}
	rep := &report{Conns: o.conns, Window: o.window, Settle: o.settle, Spread: o.spread}
	for _, s := range o.servers {
		r, err := measureOne(o, s, exe, logw)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", s, err)
		}
		rep.Rows = append(rep.Rows, r)
	}
	return rep, nil
}

var httpc = &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}

func fetchStats(addr string) (serverStats, error) {
	var st serverStats
	resp, err := httpc.Get("http://" + addr + "/stats")
	if err != nil {
		return st, fmt.Errorf("hbload: stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("hbload: stats: %w", err)
	}
	return st, nil
}

func measureOne(o options, kind, exe string, logw io.Writer) (r row, err error) {
	r = row{Server: kind, Conns: o.conns}
	logf := func(format string, a ...any) {
		fmt.Fprintf(logw, "hbload: %s: %s\n", kind, fmt.Sprintf(format, a...))
	}
	r.Echo, r.TLS = o.echo, o.tls
	echoArg := "-echo=" + strconv.FormatFloat(o.echo, 'g', -1, 64)
	srv, err := startChild(exe, logw, "-role=server", "-kind="+kind, echoArg, "-tls="+strconv.FormatBool(o.tls))
	if err != nil {
		return r, err
	}
	r.pids = append(r.pids, srv.cmd.Process.Pid)
	defer func() { err = errors.Join(err, srv.stop()) }()
	line, err := srv.next(startTimeout)
	if err != nil {
		return r, err
	}
	addr, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		return r, fmt.Errorf("hbload: server said %q", line)
	}
	url := "ws://" + addr + "/ws"
	if a, wss, ok := strings.Cut(addr, " wss "); ok {
		addr, url = a, "wss://"+wss+"/ws"
	}
	pid := srv.cmd.Process.Pid
	if r.RSSBase, err = rss(pid); err != nil {
		return r, err
	}
	base, err := fetchStats(addr)
	if err != nil {
		return r, err
	}
	r.HeapBase, r.StackBase, r.GorBase = base.HeapAlloc, base.StackInuse, base.Goroutines

	ping := time.Duration(0)
	if kind == "hub-default" {
		ping = defaultClientPing
	}
	began := time.Now()
	cli, err := startChild(exe, logw, "-role=client", "-url="+url,
		"-conns="+strconv.Itoa(o.conns), "-ping="+ping.String(), "-spread="+o.spread.String(), echoArg)
	if err != nil {
		return r, err
	}
	r.pids = append(r.pids, cli.cmd.Process.Pid)
	defer func() { err = errors.Join(err, cli.stop()) }()
	if line, err = cli.next(dialTimeout); err != nil {
		return r, err
	}
	var connected, failed int
	if _, err := fmt.Sscanf(line, "connected %d failed %d", &connected, &failed); err != nil {
		return r, fmt.Errorf("hbload: client said %q", line)
	}
	if failed > 0 {
		detail, _ := cli.next(time.Second)
		return r, fmt.Errorf("hbload: %d of %d connections failed: %s", failed, o.conns, detail)
	}
	logf("%d connections in %v", connected, time.Since(began).Round(time.Millisecond))

	// The server counts a connection a moment after the client has it.
	for deadline := time.Now().Add(registerTimeout); ; {
		st, err := fetchStats(addr)
		if err != nil {
			return r, err
		}
		r.ServerConns = st.Conns
		if st.Conns == o.conns {
			break
		}
		if time.Now().After(deadline) {
			// Measured all the same: the row shows the shortfall.
			logf("the server counts %d connections of %d", st.Conns, o.conns)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	time.Sleep(o.settle)
	if r.RSSConnected, err = rss(pid); err != nil {
		return r, err
	}
	user0, sys0, err := cpuTicks(pid)
	if err != nil {
		return r, err
	}
	st0, err := cli.status()
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	mid, err := fetchStats(addr)
	if err != nil {
		return r, err
	}
	r.LoadFrom = loadAvg()
	logf("measuring for %v (load average %s)", o.window, r.LoadFrom)
	time.Sleep(o.window)
	user1, sys1, err := cpuTicks(pid)
	if err != nil {
		return r, err
	}
	r.Window = time.Since(t0)
	r.UserTicks, r.SysTicks = user1-user0, sys1-sys0
	r.LoadTo = loadAvg()
	if r.RSSEnd, err = rss(pid); err != nil {
		return r, err
	}
	end, err := fetchStats(addr)
	if err != nil {
		return r, err
	}
	r.HeapEnd, r.StackEnd, r.GorEnd = end.HeapAlloc, end.StackInuse, end.Goroutines
	r.Deadlines = end.Deadlines - mid.Deadlines
	r.LatenessP99, r.LateFirings = p99(mid.Late, end.Late)
	r.Verdicts = end.Verdicts - mid.Verdicts
	if o.heapDir != "" {
		if err := saveHeapProfile(addr, filepath.Join(o.heapDir, fmt.Sprintf("heap-%s-%d.pb.gz", kind, o.conns))); err != nil {
			return r, err
		}
	}
	st1, err := cli.status()
	if err != nil {
		return r, err
	}
	r.Open, r.Dropped = int(st1.open), int(st1.dropped)
	r.Pings, r.Pongs = st1.pings-st0.pings, st1.pongs-st0.pongs
	r.echoes = st1.echoes - st0.echoes
	r.derive()
	return r, nil
}

// clientStatus is a client's answer to "status".
type clientStatus struct{ open, dropped, pings, pongs, echoes int64 }

func (c *child) status() (clientStatus, error) {
	var st clientStatus
	if err := c.send("status"); err != nil {
		return st, err
	}
	for {
		line, err := c.next(startTimeout)
		if err != nil {
			return st, err
		}
		if _, err := fmt.Sscanf(line, "open %d dropped %d pings %d pongs %d echoes %d", &st.open, &st.dropped, &st.pings, &st.pongs, &st.echoes); err == nil {
			return st, nil
		}
	}
}

func saveHeapProfile(addr, path string) error {
	resp, err := httpc.Get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return fmt.Errorf("hbload: heap profile: %w", err)
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("hbload: %w", err)
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// child is a server or client process: hbload's own executable in a role.
// It reads its stdin until EOF, so closing stdin stops it.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its stdout, line by line; closed at EOF
	done  chan error  // its exit
}

var errChildExited = errors.New("hbload: child process exited early")

func startChild(exe string, stderr io.Writer, args ...string) (*child, error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = stderr
	childAttr(cmd)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("hbload: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("hbload: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("hbload: start %s: %w", strings.Join(args, " "), err)
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan string, 16), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait() // after the last read, as exec requires
	}()
	return c, nil
}

func (c *child) next(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-c.lines:
		if !ok {
			return "", errChildExited
		}
		return l, nil
	case <-t.C:
		return "", fmt.Errorf("hbload: no word from %s within %v", c.cmd.Args[1], timeout)
	}
}

func (c *child) send(line string) error {
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		return fmt.Errorf("hbload: %w", err)
	}
	return nil
}

// stop closes the child's stdin and waits for it to exit, killing it if
// it takes longer than stopTimeout.
func (c *child) stop() error {
	_ = c.stdin.Close()
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	lines, killed := c.lines, false
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				lines = nil
			}
		case err := <-c.done:
			if killed {
				return fmt.Errorf("hbload: %s did not stop within %v: killed", c.cmd.Args[1], stopTimeout)
			}
			if err != nil {
				return fmt.Errorf("hbload: %s: %w", c.cmd.Args[1], err)
			}
			return nil
		case <-t.C:
			// Killed, the process ends and its stdout with it.
			_ = c.cmd.Process.Kill()
			killed = true
		}
	}
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

func ratio(a, b float64) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func (rep *report) writeTable(w io.Writer) {
	load := "idle"
	if len(rep.Rows) > 0 && rep.Rows[0].Echo > 0 {
		load = fmt.Sprintf("(%.0f %% of them echoing 1 KB a second)", rep.Rows[0].Echo*100)
	}
	if len(rep.Rows) > 0 && rep.Rows[0].TLS {
		load += " TLS"
	}
	fmt.Fprintf(w, "%d %s loopback connections per server, opened over %v; CPU over %v after %v of settling\n\n", rep.Conns, load, rep.Spread, rep.Window, rep.Settle)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\topen\tRSS/conn\tRSS/conn at connect\theap/conn\tstack/conn\tgoroutines/conn\tpings+pongs/conn/min\tCPU (user)\tRSS ×chat\theap ×chat\tCPU ×chat\tmsgs in/conn/s\tp99 lateness (firings)\tverdicts\tload average\t")
	var chat *row
	for i := range rep.Rows {
		if rep.Rows[i].Server == "chat" {
			chat = &rep.Rows[i]
		}
	}
	for _, r := range rep.Rows {
		rr, hr, cr := "-", "-", "-"
		if chat != nil {
			rr, hr, cr = ratio(r.RSSPerConn, chat.RSSPerConn), ratio(r.HeapPerConn, chat.HeapPerConn), ratio(r.CPUPercent, chat.CPUPercent)
		}
		atConnect := (float64(r.RSSConnected) - float64(r.RSSBase)) / float64(r.Conns)
		open := strconv.Itoa(r.Open)
		if r.ServerConns != r.Open || r.Dropped > 0 {
			open = fmt.Sprintf("%d (server %d, dropped %d)", r.Open, r.ServerConns, r.Dropped)
		}
		late := "-"
		switch {
		case r.LatenessP99 < 0:
			late = fmt.Sprintf("> %v (%d)", presence.LatenessBuckets[len(presence.LatenessBuckets)-1], r.LateFirings)
		case r.LateFirings > 0:
			late = fmt.Sprintf("< %v (%d)", r.LatenessP99, r.LateFirings)
		}
		verdicts := "-"
		if r.Server != "chat" {
			verdicts = strconv.FormatUint(r.Verdicts, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f + %.2f\t%.2f %% (%.2f)\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s → %s\t\n",
			r.Server, open, kib(r.RSSPerConn), kib(atConnect), kib(r.HeapPerConn), kib(r.StackPerConn),
			r.GoroutinesPerCon, r.PingsPerConnMin, r.PongsPerConnMin, r.CPUPercent, r.UserPercent, rr, hr, cr,
			r.EchoesPerSec, late, verdicts, r.LoadFrom, r.LoadTo)
	}
	_ = tw.Flush()
}

func (rep *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("hbload: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("hbload: %w", err)
	}
	return nil
}
