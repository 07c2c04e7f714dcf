package sim

import "github.com/heartbeat-go/heartbeat/sim/network"

// The link model and the fault kinds are package network's, which
// proptest shares; these names keep sim's configuration readable on its
// own (sim.Dir, sim.CrashClient).

type (
	// Dist names the shape of a latency distribution (network.Dist).
	Dist = network.Dist
	// Latency is a distribution of durations (network.Latency).
	Latency = network.Latency
	// Loss is a packet-loss process (network.Loss).
	Loss = network.Loss
	// Delivery is how a direction delivers packets (network.Delivery).
	Delivery = network.Delivery
	// Dir configures one direction of a link (network.Dir).
	Dir = network.Dir
	// Link is a connection's two directions (network.Link).
	Link = network.Link
	// LinkStats counts the packets of a run's links (network.Stats).
	LinkStats = network.Stats
	// FaultKind names a fault (network.FaultKind).
	FaultKind = network.FaultKind
)

// Distribution shapes; see network.Dist.
const (
	Constant    = network.Constant
	Uniform     = network.Uniform
	Normal      = network.Normal
	LogNormal   = network.LogNormal
	Pareto      = network.Pareto
	Exponential = network.Exponential
	Edge        = network.Edge
)

// Delivery models; see network.Delivery.
const (
	Stream   = network.Stream
	Datagram = network.Datagram
)

// TCP's retransmission timer; see network.InitialRTO.
const (
	InitialRTO     = network.InitialRTO
	MaxRTO         = network.MaxRTO
	MaxRetransmits = network.MaxRetransmits
)

// DefaultLossStep is the Gilbert–Elliott step (network.DefaultLossStep).
const DefaultLossStep = network.DefaultLossStep

// Fault kinds; see network.FaultKind.
const (
	CrashClient   = network.CrashClient
	CrashServer   = network.CrashServer
	Partition     = network.Partition
	HalfOpenUp    = network.HalfOpenUp
	HalfOpenDown  = network.HalfOpenDown
	CleanClose    = network.CleanClose
	ServerRestart = network.ServerRestart
	Pause         = network.Pause
)

// Symmetric returns a link whose two directions are both d.
func Symmetric(d Dir) Link { return network.Symmetric(d) }
