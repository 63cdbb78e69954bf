// Package version reports the build's version, stamped by the linker:
//
//	-X github.com/freightcast/freightcast/internal/version.Version=v0.1.0
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release this binary was built from; "dev" when built without stamping.
var Version = "dev"

// String describes the build in one line for `freightcast version` and startup logs.
func String() string {
	revision := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	return fmt.Sprintf("freightcast %s (revision %s, %s, %s/%s)", Version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
