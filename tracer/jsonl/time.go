package jsonl

import "time"

// appendTime appends t in UTC as time.RFC3339Nano would (trailing zeros of
// the fraction trimmed, "Z" for the zone), at a fraction of its cost: the
// stream formats one timestamp per kernel event.
func appendTime(b []byte, t time.Time) []byte {
	var enc Encoder
	return enc.appendTime(b, t)
}

func (enc *Encoder) appendTime(b []byte, t time.Time) []byte {
	sec := t.Unix()
	if sec < 0 || sec >= 253402300800 { // outside years 1970..9999: let the library do it
		return t.UTC().AppendFormat(b, time.RFC3339Nano)
	}
	if !enc.valid || sec != enc.sec {
		appendSecond(enc.prefix[:0], sec)
		enc.sec, enc.valid = sec, true
	}
	b = append(b, enc.prefix[:]...)
	return appendFraction(b, t.Nanosecond())
}

// appendSecond formats "2006-01-02T15:04:05" for a Unix second.
func appendSecond(b []byte, sec int64) []byte {
	days, rem := sec/86400, sec%86400
	y, m, d := civil(days)
	b = append4(b, y)
	b = append(b, '-')
	b = append2(b, m)
	b = append(b, '-')
	b = append2(b, d)
	b = append(b, 'T')
	b = append2(b, int(rem/3600))
	b = append(b, ':')
	b = append2(b, int(rem/60%60))
	b = append(b, ':')
	return append2(b, int(rem%60))
}

// appendFraction appends ".123456789Z" without trailing zeros, or "Z".
func appendFraction(b []byte, ns int) []byte {
	if ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, 'Z')
}

// civil converts days since 1970-01-01 to a date (Howard Hinnant's algorithm).
func civil(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

func append4(b []byte, v int) []byte {
	return append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}
