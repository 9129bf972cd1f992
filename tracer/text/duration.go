package text

import (
	"strconv"
	"time"
)

// AppendDuration appends a duration precise enough for a log and a
// timeline, where sub-millisecond handshakes and 60 s TIME_WAITs sit side
// by side: 0.012 ms, 25.0 ms, 17.46 s, then as AppendAge from a minute on.
func AppendDuration(b []byte, d time.Duration) []byte {
	switch {
	case d < 0:
		return append(b, '-')
	case d < time.Millisecond:
		b = strconv.AppendFloat(b, float64(d)/1e6, 'f', 3, 64)
		return append(b, " ms"...)
	case d < time.Second:
		b = strconv.AppendFloat(b, float64(d)/1e6, 'f', 1, 64)
		return append(b, " ms"...)
	case d < time.Minute:
		b = strconv.AppendFloat(b, d.Seconds(), 'f', 2, 64)
		return append(b, " s"...)
	}
	return AppendAge(b, d)
}

// Duration is AppendDuration as a string.
func Duration(d time.Duration) string {
	var a [24]byte
	return string(AppendDuration(a[:0], d))
}

// AppendAge appends a coarse duration for columns: 850ms, 12.3s, 5m02s,
// 2h05m, 3d04h; "<1ms" below a millisecond, "-" when negative.
func AppendAge(b []byte, d time.Duration) []byte {
	switch {
	case d < 0:
		return append(b, '-')
	case d < time.Millisecond:
		return append(b, "<1ms"...)
	case d < time.Second:
		b = strconv.AppendInt(b, int64(d/time.Millisecond), 10)
		return append(b, "ms"...)
	case d < time.Minute:
		b = strconv.AppendFloat(b, d.Seconds(), 'f', 1, 64)
		return append(b, 's')
	case d < time.Hour:
		return appendTwo(b, d/time.Minute, 'm', d%time.Minute/time.Second, 's')
	case d < 24*time.Hour:
		return appendTwo(b, d/time.Hour, 'h', d%time.Hour/time.Minute, 'm')
	}
	return appendTwo(b, d/(24*time.Hour), 'd', d%(24*time.Hour)/time.Hour, 'h')
}

// Age is AppendAge as a string.
func Age(d time.Duration) string {
	var a [24]byte
	return string(AppendAge(a[:0], d))
}

// appendTwo appends "5m02s": a count of a unit, then a count of the next,
// always two digits.
func appendTwo(b []byte, n time.Duration, unit byte, m time.Duration, sub byte) []byte {
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, unit)
	if m < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, int64(m), 10)
	return append(b, sub)
}

// AppendCountdown appends a timer's time left, with tenths under 100 s so
// that a TIME_WAIT countdown visibly moves at every frame; "0.0s" once it
// ran out.
func AppendCountdown(b []byte, d time.Duration) []byte {
	switch {
	case d <= 0:
		return append(b, "0.0s"...)
	case d < 100*time.Second:
		b = strconv.AppendFloat(b, d.Seconds(), 'f', 1, 64)
		return append(b, 's')
	}
	return AppendAge(b, d)
}

// Countdown is AppendCountdown as a string.
func Countdown(d time.Duration) string {
	var a [24]byte
	return string(AppendCountdown(a[:0], d))
}

// AppendMillis appends a duration in milliseconds to the microsecond,
// without a unit and trailing zeros trimmed (25.004, 60000): for machines.
func AppendMillis(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
}
