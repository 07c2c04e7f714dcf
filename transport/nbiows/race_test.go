//go:build race

package nbiows

const raceEnabled = true
