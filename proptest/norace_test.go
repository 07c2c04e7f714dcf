//go:build !race

package proptest

const raceBuild = false
