// Package privtest is the former home of tracertest's privileged helpers,
// kept while code that imports it moves to tracertest.
package privtest

import "github.com/twtrace/twtrace/tracer/tracertest"

// NetNS is tracertest.NetNS.
type NetNS = tracertest.NetNS

// Aliases of tracertest's helpers.
var (
	Require     = tracertest.Require
	Required    = tracertest.Required
	Unavailable = tracertest.Unavailable
	NewNetNS    = tracertest.NewNetNS
	LockBPF     = tracertest.LockBPF
)

// RequireEnv is tracertest.RequireEnv.
const RequireEnv = tracertest.RequireEnv
