package tui

import (
	"math"
	"strconv"
)

// ---------------------------------------------------------------- VIEW

// Formatting of the values only the live view shows; addresses, owners,
// times and durations are package text's, as in every other output. All of
// it returns plain text: styles are applied by the grid, per cell.

// fmtRate is a per-second rate, "-" until there is one.
func fmtRate(r float64, ok bool) string {
	switch {
	case !ok:
		return "-"
	case r == 0:
		return "0"
	case r < 10:
		return strconv.FormatFloat(r, 'f', 1, 64)
	case r < 10000:
		return strconv.FormatFloat(math.Round(r), 'f', 0, 64)
	case r < 1e7:
		return strconv.FormatFloat(r/1e3, 'f', 0, 64) + "k"
	}
	return strconv.FormatFloat(r/1e6, 'f', 0, 64) + "M"
}

// itoa is strconv.Itoa for the counters, which are of several types.
func itoa[T ~int | ~int64 | ~uint64 | ~uint32 | ~uint16](v T) string {
	return strconv.FormatUint(uint64(v), 10)
}
