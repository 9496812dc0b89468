package sdk

import (
	"testing"
	"unsafe"
)

func TestLedgerItemIsOneCacheLine(t *testing.T) {
	if n := unsafe.Sizeof(ledgerItem{}); n != 64 {
		t.Errorf("ledgerItem is %d bytes, want 64", n)
	}
	var it ledgerItem
	it.setBasis(1<<40, 7)
	if e := it.entry(); e.RecordVersion != 1<<40 || e.SettingsVersion != 7 {
		t.Errorf("large versions: %d, %d", e.RecordVersion, e.SettingsVersion)
	}
}

// BenchmarkRecordExposureAlone is the producer's side of the ledger queue
// without a writer running: what Recommend pays per exposure when the
// writer is not competing for the cores.
func BenchmarkRecordExposureAlone(b *testing.B) {
	cfg := Config{LedgerBuffer: 1 << 16, LedgerSampling: 1}
	c := &Client{cfg: cfg}
	c.ledger.init(cfg, false)
	res := Result{Personalized: true}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if i&(1<<16-1) == 0 {
			c.ledger.cur = c.ledger.cur[:0]
		}
		c.recordExposure("user-42", &res, 3)
	}
}
