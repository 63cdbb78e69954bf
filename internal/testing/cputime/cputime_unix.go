//go:build unix

// Package cputime reads the CPU time a benchmark's process used: on a shared, loaded machine it
// moves far less with the other load than wall-clock rates do.
package cputime

import (
	"syscall"
	"time"
)

// Process is the user and system CPU time this process has used so far.
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
