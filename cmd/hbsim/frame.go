package main

import "github.com/heartbeat-go/heartbeat/transport"

func fsmPong(seq uint64) transport.Frame { return transport.Frame{Kind: transport.Pong, Seq: seq} }
