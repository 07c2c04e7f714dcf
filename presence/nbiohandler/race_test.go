//go:build race

package nbiohandler_test

const raceEnabled = true
