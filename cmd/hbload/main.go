// Command hbload measures what idle WebSocket connections cost a server, on
// real loopback sockets: gorilla/websocket's chat pattern (a read pump and a
// write pump per connection, a ping every 54 s) beside the presence hub
// pinging at the same rate and the hub with its shipped defaults, and (-servers
// nbio) the hub at that rate with its connections read by nbiows' epoll loop
// instead of a goroutine each.
//
// Each server runs in its own process, one after the other, with its own
// client process holding the connections; hbload starts both by running its
// own executable again, so it builds nothing at run time. Per server it
// reports resident memory, heap (after a full GC), goroutine stacks and
// goroutines per connection, and the server's CPU over the window, as a
// share of one core; and the ratio of each to the chat pattern's.
//
// The clients open their connections evenly over -spread (54 s, the chat
// pattern's ping period, by default), as a server gets them over time; with
// -spread 0 they all arrive at once and the chat pattern's pings go out in
// one batch every 54 s. With -echo F, a fraction F of the connections send a
// 1 KB message every second, which the server echoes (the chat pattern sends
// it back to its sender instead of broadcasting it); the table then shows
// the messages received, the p99 of the hub's deadline lateness and its
// suspect or dead verdicts over the window. The results are in
// docs/presence-cost.md.
//
//	go run ./cmd/hbload -conns 10000 -for 2m
//	go run ./cmd/hbload -conns 200 -for 5s -spread 1s -servers chat,hub
//	go run ./cmd/hbload -conns 1000 -json out.json -heapprofile /tmp
//	go run ./cmd/hbload -conns 19000 -echo 0.1 -servers chat,hub,nbio
//
// Linux only (it reads /proc). Every connection needs a file in the client
// and in the server; each process raises its soft open-file limit to the
// hard limit (ulimit -Hn), which bounds -conns.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// usageError is a bad flag or value: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hbload:", err)
		var ue usageError
		if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	conns   int
	window  time.Duration
	settle  time.Duration
	spread  time.Duration
	servers []string
	json    string
	heapDir string
	// The roles hbload runs itself as.
	role, kind, url string
	ping            time.Duration
	// echo is the fraction of connections that send a 1 KB message every
	// second, which the server echoes (0: all idle).
	echo float64
	// tls serves the WebSockets over TLS (self-signed; the clients do not
	// verify it).
	tls bool
}

var knownServers = map[string]bool{"chat": true, "hub": true, "hub-default": true, "nbio": true}

func parse(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("hbload", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&o.conns, "conns", 1000, "idle connections per server")
	fs.DurationVar(&o.window, "for", 2*time.Minute, "CPU measurement window, after settling")
	fs.DurationVar(&o.settle, "settle", 10*time.Second, "wait after the last connection before measuring")
	servers := fs.String("servers", "chat,hub,hub-default", "servers to measure, in order (chat, hub, hub-default, nbio)")
	fs.DurationVar(&o.spread, "spread", 54*time.Second, "open the connections evenly over this long, as a server gets them over time (the chat pattern's pings then spread too; 0: all at once)")
	fs.Float64Var(&o.echo, "echo", 0, "fraction of the connections that send a 1 KB message every second, echoed by the server (0: all idle)")
	fs.BoolVar(&o.tls, "tls", false, "serve the WebSockets over TLS (a self-signed certificate; nbio through its own TLS, the others through crypto/tls)")
	fs.StringVar(&o.json, "json", "", "also write the rows as JSON to this file")
	fs.StringVar(&o.heapDir, "heapprofile", "", "save each server's heap profile (inuse_space, after the window) in this directory")
	fs.StringVar(&o.role, "role", "", "internal: run as a server or client process")
	fs.StringVar(&o.kind, "kind", "", "internal: the server kind of -role server")
	fs.StringVar(&o.url, "url", "", "internal: the address -role client dials")
	fs.DurationVar(&o.ping, "ping", 0, "internal: how often -role client pings each connection (0: never)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, usagef("unexpected arguments %q", fs.Args())
	}
	for s := range strings.SplitSeq(*servers, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !knownServers[s] {
			return o, usagef("unknown server %q (want chat, hub, hub-default or nbio)", s)
		}
		o.servers = append(o.servers, s)
	}
	switch {
	case o.conns <= 0:
		return o, usagef("-conns %d must be positive", o.conns)
	case o.echo < 0 || o.echo > 1:
		return o, usagef("-echo %v must be a fraction between 0 and 1", o.echo)
	case o.window <= 0 || o.settle < 0 || o.spread < 0:
		return o, usagef("-for %v must be positive, -settle %v and -spread %v not negative", o.window, o.settle, o.spread)
	case len(o.servers) == 0:
		return o, usagef("-servers names no server")
	}
	return o, nil
}

func run(args []string, out io.Writer) error {
	o, err := parse(args, out)
	if err != nil {
		return err
	}
	switch o.role {
	case "server":
		return serve(o.kind, o.echo > 0, o.tls, os.Stdin, os.Stdout)
	case "client":
		return drive(o.url, o.conns, o.ping, o.spread, o.echo, os.Stdin, os.Stdout)
	case "":
	default:
		return usagef("unknown -role %q", o.role)
	}
	rep, err := measure(o, os.Args[0], os.Stderr)
	if rep != nil && len(rep.Rows) > 0 {
		rep.writeTable(out) // what was measured before any failure
	}
	if err != nil {
		return err
	}
	if o.json != "" {
		return rep.writeJSON(o.json)
	}
	return nil
}
