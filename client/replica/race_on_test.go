//go:build race

package replica

// raceEnabled: the race detector slows SQLite calls about fivefold, so the
// randomized tests run fewer schedules under it.
const raceEnabled = true
