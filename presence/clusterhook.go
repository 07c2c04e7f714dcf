package presence

// Cluster shares a hub's presence with the hubs of other server nodes, so
// that Online, Snapshot, Subscribe and OnEvent answer for every node:
// presence/cluster.Node does it over Redis. The hub hands it its own events
// and asks it the rest.
type Cluster interface {
	// Local is called with each of the hub's own events, in order, on the
	// hub's event goroutine; it must return promptly.
	Local(Event)
	// Online reports whether user has a session on any live node.
	Online(user string) bool
	// Snapshot returns who is online on every node, as of its Seq.
	Snapshot() Snapshot
	// Subscribe returns a Snapshot and calls fn with every later cluster
	// event, in order, each once, until cancel is called.
	Subscribe(fn func(Event)) (snap Snapshot, cancel func())
}
