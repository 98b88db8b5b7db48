package gen

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/records"
)

// Order is an order that generated payments refer to (Options.OrderList).
type Order struct {
	ID       string
	Amount   int64 // minor units of Currency
	Currency string
	// CreatedAt is the order's created_at; zero when its file gave none
	// (payments then follow OrderAmount's order of the same position).
	CreatedAt time.Time
}

// OrdersFile is what ReadOrders found in an orders file.
type OrdersFile struct {
	// Orders are the rows an import stores, in file order: valid, and
	// with an id no other row of the file gives different content.
	Orders []Order
	// Records is the number of records in the file.
	Records int64
	// Skipped counts the records left out: those the import rejects, and
	// every row of an id the file gives with different contents (which of
	// them the import keeps depends on the order its chunks commit).
	Skipped int64
}

// ReadOrders reads an orders file of size bytes (CSV or XML, as `starter
// import` takes it) and returns the orders its import stores, validated by
// the importer's own rules, so payments generated for them all find their
// order. It reads the file twice, as an import does (plan, then records),
// holding only the orders.
func ReadOrders(r io.ReaderAt, size int64) (OrdersFile, error) {
	var out OrdersFile
	plan, err := records.PlanChunks(io.NewSectionReader(r, 0, size), records.KindOrders, 0, records.Limits{})
	if err != nil {
		return out, fmt.Errorf("orders file: %w", err)
	}
	out.Records = plan.Records
	type seen struct {
		at     int // index in parsed
		o      orders.NewOrder
		differ bool
	}
	var parsed []orders.NewOrder
	byID := make(map[string]*seen)
	for _, c := range plan.Chunks {
		rd := records.NewReader(io.NewSectionReader(r, c.Start, c.End-c.Start), plan, c, records.Limits{})
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return out, fmt.Errorf("orders file: %w", err)
			}
			if rec.Err != nil {
				out.Skipped++
				continue
			}
			o, fe := importer.ParseOrder(rec.Values)
			if fe != nil {
				out.Skipped++
				continue
			}
			if s, ok := byID[o.OrderID]; ok {
				if !orders.Same(s.o, o) {
					s.differ = true
				}
				out.Skipped++
				continue
			}
			byID[o.OrderID] = &seen{at: len(parsed), o: o}
			parsed = append(parsed, o)
		}
	}
	for _, o := range parsed {
		s := byID[o.OrderID]
		if s.differ {
			out.Skipped++ // the first row of a conflicting id
			continue
		}
		out.Orders = append(out.Orders, Order{ID: o.OrderID, Amount: o.Amount, Currency: o.Currency, CreatedAt: o.CreatedAt})
	}
	return out, nil
}

// ReadOrdersFile is ReadOrders of the file at path.
func ReadOrdersFile(path string) (OrdersFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return OrdersFile{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return OrdersFile{}, err
	}
	return ReadOrders(f, fi.Size())
}

// Reasons lists the bad rows by reason, "BAD_AMOUNT 182, BAD_DATE 196",
// in the reasons' alphabetical order; "" when there are none.
func (s Stats) Reasons() string {
	names := make([]string, 0, len(s.BadByReason))
	for r := range s.BadByReason {
		names = append(names, r)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, r := range names {
		parts[i] = fmt.Sprintf("%s %d", r, s.BadByReason[r])
	}
	return strings.Join(parts, ", ")
}
