package importer

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/orders"
)

// BenchmarkAppendOrderRow is the per-row CPU an orders import spends before
// MySQL: two AES-GCM encryptions, the blind index and escaping.
func BenchmarkAppendOrderRow(b *testing.B) {
	keys, _ := encryption.ParseKeys("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	bidx, _ := encryption.ParseBlindIndexKey("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	im := &Importer{Keys: keys, BlindIndex: bidx}
	o := orders.NewOrder{OrderID: "ORD-00012345", Amount: 12345, Currency: "USD",
		CustomerEmail: "jane.doe+17@example.com", CustomerPhone: "+15550101234"}
	var buf bytes.Buffer
	now := []byte(time.Now().UTC().Format("2006-01-02 15:04:05.000000"))
	var sealed orders.Sealed
	var scratch rowScratch
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if buf.Len() > 1<<20 {
			buf.Reset()
		}
		o.OrderID = fmt.Sprintf("ORD-%08d", i)
		if err := im.appendOrderRow(&buf, o, now, &sealed, &scratch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
