package testenv

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Alternate compares the throughput of two kinds of request under the same
// machine state: each b.Loop round sends perPhase requests of kind a, then
// perPhase of kind z, from 8 goroutines, and it reports both rates and
// their ratio (z's throughput over a's: nameZ/nameA-throughput). send makes
// one request of the kind given and reports a failure.
func Alternate(b *testing.B, nameA, nameZ string, perPhase int, send func(z bool) error) {
	phase := func(z bool) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		t := time.Now()
		for range 8 {
			wg.Go(func() {
				for next.Add(1) <= int64(perPhase) {
					if err := send(z); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(t)
	}
	var da, dz time.Duration
	for b.Loop() {
		da += phase(false)
		dz += phase(true)
	}
	b.ReportMetric(float64(da)/float64(dz), nameZ+"/"+nameA+"-throughput")
	b.ReportMetric(float64(b.N*perPhase)/da.Seconds(), nameA+"-req/s")
	b.ReportMetric(float64(b.N*perPhase)/dz.Seconds(), nameZ+"-req/s")
	b.ReportMetric(0, "ns/op")
}
