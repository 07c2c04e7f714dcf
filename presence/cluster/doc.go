// Package cluster shares presence between server nodes through Redis, so
// that every node's hub answers Online, Snapshot and its events for the
// whole cluster, and a node that dies without a word has its users leave
// everywhere within a few seconds.
//
// A Node asserts its own node's sessions (not its connections) in Redis
// under a lease: a key with a TTL holding the node's incarnation, renewed a
// few times per TTL. Its sessions count only while the lease lives; every
// write of them is a script fenced by the lease, so a frozen or partitioned
// node that wakes up cannot write over its successor, and a node counts its
// own lease lost before Redis can expire it. Changes go to a capped stream
// per node, numbered within the incarnation, with a pub/sub notice; every
// node also polls each other node's lease and stream head once per renewal
// period, which is all the liveness traffic there is: it grows with the
// nodes, not with the sessions or connections.
//
// Each node keeps a view of every live node's set and emits presence events
// when the union changes; it is fed states, not deltas, so an entry read
// twice, a resync, or a node re-registering the same sessions after Redis
// lost its data emits nothing.
//
// Set a Node as presence.HubConfig.Cluster:
//
//	node, err := cluster.New(ctx, cluster.Config{Addr: "127.0.0.1:6379", NodeID: "node-1"})
//	hub, err := presence.NewHub(presence.HubConfig{Cluster: node, OnEvent: onEvent})
//	// ... on the way out: hub.Shutdown(ctx), then node.Close(ctx).
//
// docs/cluster.md has the consistency contract, the bounds and their
// formulas, the key layout and the measurements.
package cluster
