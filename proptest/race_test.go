//go:build race

package proptest

// raceBuild: the exhaustive search has no concurrency for the race detector
// to watch, so a -race run explores less of it.
const raceBuild = true
