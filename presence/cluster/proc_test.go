package cluster

// nodeMainIfChild runs a node process when the test binary is re-executed
// as one; it reports whether it did.
func nodeMainIfChild() bool { return false }
