package controllers

import "time"

// lowestNonZero is the sooner of two requeue delays, of those that are set.
func lowestNonZero(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
