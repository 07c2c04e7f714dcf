//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

var errNotLinux = errors.New("hbload: reads /proc: Linux only")

const clockTicks = 100

func raiseFileLimit() error                { return nil }
func fileLimit() uint64                    { return 0 }
func childAttr(*exec.Cmd)                  {}
func rss(int) (uint64, error)              { return 0, errNotLinux }
func cpuTicks(int) (uint64, uint64, error) { return 0, 0, errNotLinux }
func loadAvg() string                      { return "?" }
func alive(int) bool                       { return false }
