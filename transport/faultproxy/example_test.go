package faultproxy_test

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/heartbeat-go/heartbeat/transport/faultproxy"
)

// A client dials the proxy instead of the server; the test turns the link
// half-open and heals it.
func Example() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0") // the server: an echo
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()

	p, err := faultproxy.New(ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	buf := make([]byte, 16)

	_ = p.Set(faultproxy.Blackhole{}) // the server goes silent
	_, _ = c.Write([]byte("ping"))
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = c.Read(buf)
	fmt.Println("half-open:", err != nil)

	p.Clear()
	_, _ = c.Write([]byte("pong"))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := c.Read(buf)
	fmt.Println("healed:", string(buf[:n]))
	// Output:
	// half-open: true
	// healed: pong
}
