//go:build !unix

package ingest

import "time"

// processCPU is not measured here; the benchmarks then leave the CPU figures out.
func processCPU() time.Duration { return 0 }
