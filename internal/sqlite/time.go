package sqlite

import "time"

// orNow returns t in UTC, or now when t is zero.
func orNow(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		t = now()
	}
	return t.UTC()
}
