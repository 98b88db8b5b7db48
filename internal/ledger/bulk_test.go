package ledger_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/ledger"
)

// model is an independent, in-memory rendering of the rules of RecordTx
// (SPEC sections 3 and 5), against which the bulk and the row-by-row write
// paths are checked.
type model struct {
	orders   map[string]modelOrder
	payments map[string]*modelPay
	events   []modelEvent
}

type modelOrder struct {
	amount   int64
	currency string
}

type modelPay struct {
	order, currency, method, details, ref, failure string
	amount                                         int64
	status                                         ledger.Status
	created                                        time.Time // zero: not checked
}

type modelEvent struct {
	payment, order, from, to, source, ref, note string
	applied                                     bool
}

func newModel() *model {
	return &model{orders: map[string]modelOrder{}, payments: map[string]*modelPay{}}
}

// record applies one batch and returns the expected results.
func (m *model) record(src ledger.Source, ref string, batch []ledger.Payment) []ledger.Result {
	// Refs held at the start of the batch, plus those claimed during it: a
	// ref stays taken for the rest of the batch even if its holder moves on.
	refs := map[string]string{}
	for id, p := range m.payments {
		if p.ref != "" {
			refs[p.ref] = id
		}
	}
	out := make([]ledger.Result, len(batch))
	for i, p := range batch {
		if p.Status == "" {
			p.Status = ledger.StatusPending
		}
		r := &out[i]
		r.PaymentID = p.PaymentID
		if p.Amount <= 0 { // the only invalid rows the scenario has
			r.Outcome, r.Code = ledger.Rejected, ledger.CodeBadAmount
			continue
		}
		reject := func(code string, status ledger.Status) {
			r.Outcome, r.Code, r.Status = ledger.Rejected, code, status
		}
		event := func(s *modelPay, from, to ledger.Status, applied bool, note string) {
			m.events = append(m.events, modelEvent{payment: p.PaymentID, order: s.order, from: string(from), to: string(to),
				source: string(src), ref: ref, applied: applied, note: note})
		}
		s := m.payments[p.PaymentID]
		if s == nil {
			o, ok := m.orders[p.OrderID]
			cur := p.Currency
			if cur == "" {
				cur = o.currency
			}
			switch {
			case !ok:
				reject(ledger.CodeOrderNotFound, "")
			case cur != o.currency:
				reject(ledger.CodeCurrencyMismatch, "")
			case p.GatewayRef != "" && refs[p.GatewayRef] != "":
				reject(ledger.CodeDuplicateConflict, "")
			default:
				s = &modelPay{order: p.OrderID, currency: cur, method: p.Method, details: p.Details, ref: p.GatewayRef,
					failure: p.FailureReason, amount: p.Amount, status: p.Status, created: p.CreatedAt}
				m.payments[p.PaymentID] = s
				if s.ref != "" {
					refs[s.ref] = p.PaymentID
				}
				event(s, "", s.status, true, "")
				r.Outcome, r.Status = ledger.Inserted, s.status
			}
			continue
		}
		if s.order != p.OrderID || s.amount != p.Amount || (p.Currency != "" && p.Currency != s.currency) ||
			s.method != p.Method || s.details != p.Details {
			reject(ledger.CodeDuplicateConflict, s.status)
			continue
		}
		if p.Status == s.status {
			if (p.GatewayRef == "" || p.GatewayRef == s.ref) && (p.FailureReason == "" || p.FailureReason == s.failure) {
				r.Outcome, r.Status = ledger.Unchanged, s.status
			} else {
				reject(ledger.CodeDuplicateConflict, s.status)
			}
			continue
		}
		if s.status != ledger.StatusPending {
			event(s, s.status, p.Status, false, "refused: payment is already "+string(s.status))
			reject(ledger.CodeBadTransition, s.status)
			continue
		}
		if p.GatewayRef != "" && p.GatewayRef != s.ref {
			if holder := refs[p.GatewayRef]; holder != "" && holder != p.PaymentID {
				reject(ledger.CodeDuplicateConflict, s.status)
				continue
			}
			refs[p.GatewayRef] = p.PaymentID
			s.ref = p.GatewayRef
		}
		if p.FailureReason != "" {
			s.failure = p.FailureReason
		}
		from := s.status
		s.status = p.Status
		event(s, from, s.status, true, "")
		r.Outcome, r.Status = ledger.Settled, s.status
	}
	return out
}

// check compares the database with the model.
func (m *model) check(t *testing.T, l *ledger.Ledger, db *sqlx.DB) {
	t.Helper()
	var rows []struct {
		ID       string         `db:"payment_id"`
		Order    string         `db:"order_id"`
		Amount   int64          `db:"payment_amount"`
		Currency string         `db:"currency"`
		Status   string         `db:"payment_status"`
		Method   string         `db:"payment_method"`
		Details  []byte         `db:"payment_details"`
		Ref      sql.NullString `db:"gateway_ref"`
		Failure  sql.NullString `db:"failure_reason"`
		Created  time.Time      `db:"created_at"`
	}
	if err := db.Select(&rows, "SELECT payment_id, order_id, payment_amount, currency, payment_status, payment_method, "+
		"payment_details, gateway_ref, failure_reason, created_at FROM payments"); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(m.payments) {
		t.Errorf("%d payments stored, want %d", len(rows), len(m.payments))
	}
	bad := 0
	for _, r := range rows {
		w := m.payments[r.ID]
		if w == nil {
			t.Errorf("unexpected payment %q", r.ID)
			continue
		}
		details := ""
		if r.Details != nil {
			pt, err := l.Keys.Decrypt(r.Details, encryption.AAD("payments", "payment_details", r.ID))
			if err != nil {
				t.Fatalf("payment %q: decrypt details: %v", r.ID, err)
			}
			details = string(pt)
			if details == "" {
				t.Errorf("payment %q: empty details stored encrypted, want NULL", r.ID)
			}
		}
		got := modelPay{order: r.Order, currency: r.Currency, method: r.Method, details: details, ref: r.Ref.String,
			failure: r.Failure.String, amount: r.Amount, status: ledger.Status(r.Status)}
		want := *w
		want.created = time.Time{}
		if got != want || (!w.created.IsZero() && !r.Created.Equal(w.created.UTC().Truncate(time.Microsecond))) {
			if bad++; bad <= 10 {
				t.Errorf("payment %q:\n got %+v created %v\nwant %+v created %v", r.ID, got, r.Created, want, w.created)
			}
		}
	}

	var evs []struct {
		Payment string         `db:"payment_id"`
		Order   string         `db:"order_id"`
		From    sql.NullString `db:"from_status"`
		To      string         `db:"to_status"`
		Source  string         `db:"source"`
		Ref     sql.NullString `db:"reference"`
		Applied bool           `db:"applied"`
		Note    sql.NullString `db:"note"`
	}
	if err := db.Select(&evs, "SELECT payment_id, order_id, from_status, to_status, source, reference, applied, note "+
		"FROM payment_events ORDER BY event_id"); err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(m.events) {
		t.Errorf("%d events stored, want %d", len(evs), len(m.events))
	}
	bad = 0
	for i := range min(len(evs), len(m.events)) {
		e := evs[i]
		got := modelEvent{payment: e.Payment, order: e.Order, from: e.From.String, to: e.To, source: e.Source,
			ref: e.Ref.String, note: e.Note.String, applied: e.Applied}
		if got != m.events[i] {
			if bad++; bad <= 10 {
				t.Errorf("event %d:\n got %+v\nwant %+v", i, got, m.events[i])
			}
		}
	}

	paid := map[string]int64{}
	for _, p := range m.payments {
		if p.status == ledger.StatusSuccess {
			paid[p.order] += p.amount
		}
	}
	var orders []struct {
		ID     string `db:"order_id"`
		Paid   int64  `db:"paid_amount"`
		Status string `db:"order_status"`
	}
	if err := db.Select(&orders, "SELECT order_id, paid_amount, order_status FROM orders"); err != nil {
		t.Fatal(err)
	}
	bad = 0
	for _, o := range orders {
		status := ledger.OrderPending
		if paid[o.ID] >= m.orders[o.ID].amount {
			status = ledger.OrderCompleted
		}
		if o.Paid != paid[o.ID] || ledger.OrderStatus(o.Status) != status {
			if bad++; bad <= 10 {
				t.Errorf("order %s: paid %d %s, want %d %s", o.ID, o.Paid, o.Status, paid[o.ID], status)
			}
		}
	}
}

// bulkScenario returns the batches of TestBulkMatchesRules: a first large
// batch of new payments, then a large batch that mixes new payments with
// identical repeats, settlements, refused transitions, conflicts of every
// kind and rows repeated within the batch, then a small mixed batch.
func bulkScenario(orders map[string]modelOrder) [][]ledger.Payment {
	rng := rand.New(rand.NewPCG(42, 7))
	base := time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC)
	var orderIDs []string
	for id := range orders {
		if strings.HasPrefix(id, "BO") {
			orderIDs = append(orderIDs, id)
		}
	}
	slices.Sort(orderIDs)
	methods := []string{"CARD", "UPI", "NETBANKING", "WALLET", "BANK_TRANSFER", "CASH", "VOUCHER"}
	statuses := []ledger.Status{ledger.StatusSuccess, ledger.StatusSuccess, ledger.StatusPending, ledger.StatusFailed}
	newPay := func(id string, k int) ledger.Payment {
		p := ledger.Payment{
			PaymentID: id, OrderID: orderIDs[k%len(orderIDs)], Amount: 100 + rng.Int64N(2000),
			Currency: "USD", Status: statuses[rng.IntN(len(statuses))], Method: methods[rng.IntN(len(methods))],
		}
		if p.Method != "CASH" {
			p.Details = fmt.Sprintf("4111-%06d", k)
			if k%7 == 0 {
				p.Details += "\t\\N\n\\\r" // every byte LOAD DATA must escape (NUL is refused as input)
			}
		}
		if k%3 != 0 {
			p.GatewayRef = fmt.Sprintf("gw-%s", id)
		}
		if p.Status == ledger.StatusFailed && k%2 == 0 {
			p.FailureReason = "DECLINED"
			if k%4 == 0 {
				p.FailureReason = "issuer said:\t\"no\"\nretry \\N later"
			}
		}
		switch k % 5 {
		case 0:
			p.Currency = "" // the order's
		case 1, 2:
			p.CreatedAt = base.Add(time.Duration(rng.Int64N(int64(30 * 24 * time.Hour))))
		}
		if k%11 == 0 {
			p.Status = "" // PENDING by default
		}
		return p
	}

	// Batch 1: 1500 new payments.
	var b1 []ledger.Payment
	for k := range 1500 {
		id := fmt.Sprintf("PA%05d", k)
		if k%97 == 0 {
			id = fmt.Sprintf(`PA\%05d\N`, k) // backslashes in an id
		}
		b1 = append(b1, newPay(id, k))
	}
	norm := func(p ledger.Payment) ledger.Payment {
		if p.Status == "" {
			p.Status = ledger.StatusPending
		}
		return p
	}

	// Batch 2: new payments plus one of every outcome over batch 1's rows.
	var b2 []ledger.Payment
	for k := range 2500 {
		b2 = append(b2, newPay(fmt.Sprintf("PB%05d", k), k+7))
	}
	for k, p := range b1 {
		p = norm(p)
		q := p
		switch k % 10 {
		case 0: // identical repeat; gateway_ref and failure_reason may be omitted
			q.GatewayRef, q.FailureReason = "", ""
		case 1: // identical repeat with everything
		case 2: // settlement (of a PENDING one) or refused transition
			q.Status = ledger.StatusSuccess
			q.GatewayRef = "settled-" + p.PaymentID
			if p.Status == ledger.StatusSuccess {
				q.Status, q.GatewayRef = ledger.StatusFailed, ""
			}
		case 3:
			q.Status = ledger.StatusFailed
			q.FailureReason = "TIMEOUT"
		case 4: // different amount
			q.Amount++
		case 5: // another order
			q.OrderID = orderIDs[(slices.Index(orderIDs, p.OrderID)+1)%len(orderIDs)]
		case 6: // different details
			q.Details += "x"
		case 7: // a new payment taking this one's gateway ref
			q = newPay(fmt.Sprintf("PC%05d", k), k)
			q.GatewayRef = p.GatewayRef
		case 8: // same status, different failure reason / gateway ref
			q.FailureReason = "OTHER"
		case 9:
			continue
		}
		b2 = append(b2, q)
	}
	// Within the batch: repeats, conflicts, insert-then-settle, and a
	// settlement claiming a ref another entry already took.
	for k := range 300 {
		p := newPay(fmt.Sprintf("PD%05d", k), k)
		p.Status = ledger.StatusPending
		b2 = append(b2, p)
		q := p
		switch k % 4 {
		case 0:
		case 1:
			q.Amount += 5
		case 2:
			q.Status = ledger.StatusSuccess
			q.GatewayRef = "final-" + p.PaymentID
		case 3:
			q.Status = ledger.StatusFailed
			q.GatewayRef = b2[k].GatewayRef // held by another new payment
		}
		b2 = append(b2, q)
	}
	b2 = append(b2,
		ledger.Payment{PaymentID: "PE-nope", OrderID: "NO-SUCH-ORDER", Amount: 10, Method: "CARD"},
		ledger.Payment{PaymentID: "PE-eur", OrderID: "BE00", Amount: 10, Currency: "USD", Method: "CARD"},
		ledger.Payment{PaymentID: "PE-eur2", OrderID: "BE01", Amount: 10, Method: "CARD", Status: ledger.StatusSuccess},
		ledger.Payment{PaymentID: "PE-bad", OrderID: "BE01", Amount: 0, Method: "CARD"}, // invalid: never reaches the ledger's writes
	)
	rng.Shuffle(len(b2), func(i, j int) { b2[i], b2[j] = b2[j], b2[i] })

	// Batch 3: a small one after the bulk ones.
	b3 := []ledger.Payment{norm(b1[5]), newPay("PF00001", 1), newPay("PF00002", 2)}
	b3[0].Status, b3[0].GatewayRef = ledger.StatusFailed, ""
	return [][]ledger.Payment{b1, b2, b3}
}

// TestBulkMatchesRules: large batches, written with LOAD DATA, store the
// same rows, events and order states as the rules (computed here by an
// independent model) say, and so does the row-by-row path given the same
// batches.
func TestBulkMatchesRules(t *testing.T) {
	for _, mode := range []string{"bulk", "rows"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "rows" {
				defer ledger.SetBulkMinRows(1 << 30)()
			}
			l, db := newLedger(t)
			ctx := context.Background()
			m := newModel()
			for i := range 600 {
				id := fmt.Sprintf("BO%04d", i)
				m.orders[id] = modelOrder{amount: 500 + int64(i%7)*700, currency: "USD"}
				insertOrder(t, db, id, m.orders[id].amount, "USD")
			}
			for i := range 10 {
				id := fmt.Sprintf("BE%02d", i)
				m.orders[id] = modelOrder{amount: 1000, currency: "EUR"}
				insertOrder(t, db, id, 1000, "EUR")
			}
			loads0, _ := ledger.BulkCounters()
			outcomes := map[string]int{}
			for bi, batch := range bulkScenario(m.orders) {
				src, ref := ledger.SourceImport, fmt.Sprintf("import/x\t#%d\\", bi)
				want := m.record(src, ref, batch)
				got, err := l.Record(ctx, src, ref, batch)
				if err != nil {
					t.Fatalf("batch %d: %v", bi, err)
				}
				bad := 0
				for i := range want {
					g, w := got[i], want[i]
					if g.Outcome != w.Outcome || g.Code != w.Code || g.Status != w.Status || g.PaymentID != w.PaymentID {
						if bad++; bad <= 10 {
							t.Errorf("batch %d entry %d %q: got %v %s %s (%s), want %v %s %s", bi, i, batch[i].PaymentID,
								g.Outcome, g.Code, g.Status, g.Message, w.Outcome, w.Code, w.Status)
						}
					}
					outcomes[g.Outcome.String()+" "+g.Code]++
				}
				m.check(t, l, db)
			}
			t.Logf("outcomes: %v", outcomes)
			for _, o := range []string{"Inserted ", "Unchanged ", "Settled ", "Rejected " + ledger.CodeBadTransition,
				"Rejected " + ledger.CodeDuplicateConflict, "Rejected " + ledger.CodeOrderNotFound,
				"Rejected " + ledger.CodeCurrencyMismatch} {
				if outcomes[o] == 0 {
					t.Errorf("the scenario has no %q outcome", o)
				}
			}
			loads, _ := ledger.BulkCounters()
			if mode == "bulk" && loads-loads0 < 4 { // payments and events of batches 1 and 2
				t.Errorf("%d LOAD DATA statements, want at least 4", loads-loads0)
			}
			if mode == "rows" && loads != loads0 {
				t.Errorf("%d LOAD DATA statements on the row path", loads-loads0)
			}
		})
	}
}

// TestBulkConcurrentChunks: four import-chunk-sized batches recorded at
// once, each in its own READ COMMITTED transaction that is NOT retried,
// over orders they share: every batch touches all 500 orders; or each
// overlaps the others partly; or, as the chunks of an import file do, two
// pairs of batches share their orders and the pairs are disjoint.
// No call may fail: batches on shared orders serialize on the order locks
// and otherwise proceed, without deadlocks. The last layout also freezes
// the payments table's statistics at a small, skewed sample, as they lag
// behind a table that an import fills: plans then favour scans (which is
// how locking reads used to reach other chunks' uncommitted rows).
func TestBulkConcurrentChunks(t *testing.T) {
	for _, layout := range []struct {
		name       string
		nOrders    int
		staleStats bool
	}{{"all orders shared", 500, false}, {"partly shared", 3000, false}, {"shared in pairs, stale statistics", 4000, true}} {
		t.Run(layout.name, func(t *testing.T) {
			l, db := newLedger(t)
			ctx := context.Background()
			const nWorkers, perWorker = 4, 2000
			orderID := func(i int) string { return fmt.Sprintf("CO%05d", i%layout.nOrders) }
			var sb strings.Builder
			for i := range layout.nOrders {
				if sb.Len() > 0 {
					sb.WriteByte(',')
				}
				fmt.Fprintf(&sb, "('%s', %d, 'USD', '2026-01-01', '2026-01-01')", orderID(i), 1000+i%5*500)
			}
			db.MustExec("INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at) VALUES " + sb.String())
			paid := map[string]int64{}
			stored := 0
			if layout.staleStats {
				var seed []ledger.Payment
				for i := range 400 {
					seed = append(seed, pay(fmt.Sprintf("CS%04d", i), orderID(0), 1, ledger.StatusSuccess))
				}
				if _, err := l.Record(ctx, ledger.SourceImport, "seed", seed); err != nil {
					t.Fatal(err)
				}
				paid[orderID(0)] += 400
				stored = len(seed)
				db.MustExec("ALTER TABLE payments STATS_AUTO_RECALC = 0")
				db.MustExec("ANALYZE TABLE payments PERSISTENT FOR ALL")
			}

			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
			batches := make([][]ledger.Payment, nWorkers)
			for w := range nWorkers {
				for j := range perWorker {
					i := w*perWorker + j
					p := pay(fmt.Sprintf("CP%06d", i), orderID(i), 100+rng.Int64N(900),
						[]ledger.Status{ledger.StatusSuccess, ledger.StatusPending, ledger.StatusFailed}[rng.IntN(3)])
					if rng.IntN(5) > 0 {
						p.GatewayRef = fmt.Sprintf("cg-%012x", rng.Uint64()&(1<<48-1))
					}
					if p.Status == ledger.StatusSuccess {
						paid[p.OrderID] += p.Amount
					}
					batches[w] = append(batches[w], p)
				}
			}

			// Every worker records its batch in one READ COMMITTED transaction
			// that is not retried; every entry must get outcome want.
			runChunks := func(phase string, batches [][]ledger.Payment, want func(ledger.Payment) ledger.Outcome) {
				t.Helper()
				start := make(chan struct{})
				var wg sync.WaitGroup
				for w := range nWorkers {
					wg.Go(func() {
						<-start
						tx, err := db.BeginTxx(ctx, ledger.TxOptions())
						if err != nil {
							t.Error(err)
							return
						}
						defer tx.Rollback()
						res, err := l.RecordTx(ctx, tx, ledger.SourceImport, fmt.Sprintf("import/c#%d", w), batches[w])
						if err != nil {
							t.Errorf("%s worker %d: RecordTx: %v", phase, w, err)
							return
						}
						for i, r := range res {
							if r.Outcome != want(batches[w][i]) {
								t.Errorf("%s worker %d entry %d: %v %s %s", phase, w, i, r.Outcome, r.Code, r.Message)
								return
							}
						}
						if err := tx.Commit(); err != nil {
							t.Errorf("%s worker %d: commit: %v", phase, w, err)
						}
					})
				}
				t0 := time.Now()
				close(start)
				wg.Wait()
				t.Logf("%s: %d batches of about %d payments over %d orders in %v", phase, nWorkers, len(batches[0]), layout.nOrders, time.Since(t0))
			}
			// checkOrders compares every order with the expected sums and,
			// independently, with the SUCCESS payments as stored: paid_amount
			// is maintained by increments, and must stay their exact sum.
			checkOrders := func(phase string) {
				t.Helper()
				var orders []struct {
					ID     string `db:"order_id"`
					Amount int64  `db:"order_amount"`
					Paid   int64  `db:"paid_amount"`
					Status string `db:"order_status"`
					Sum    int64
				}
				if err := db.Select(&orders, "SELECT order_id, order_amount, paid_amount, order_status FROM orders"); err != nil {
					t.Fatal(err)
				}
				var sums []struct {
					ID  string `db:"order_id"`
					Sum int64  `db:"success_sum"`
				}
				if err := db.Select(&sums, `SELECT order_id, SUM(payment_amount) AS success_sum FROM payments
					WHERE payment_status = 'SUCCESS' GROUP BY order_id`); err != nil {
					t.Fatal(err)
				}
				sumOf := map[string]int64{}
				for _, s := range sums {
					sumOf[s.ID] = s.Sum
				}
				for i := range orders {
					orders[i].Sum = sumOf[orders[i].ID]
				}
				for _, o := range orders {
					status := ledger.OrderPending
					if paid[o.ID] >= o.Amount {
						status = ledger.OrderCompleted
					}
					if o.Paid != paid[o.ID] || o.Sum != paid[o.ID] || ledger.OrderStatus(o.Status) != status {
						t.Errorf("%s: order %s: paid %d %s, SUCCESS payments sum to %d; want %d %s", phase, o.ID, o.Paid, o.Status, o.Sum, paid[o.ID], status)
					}
				}
			}

			runChunks("insert", batches, func(ledger.Payment) ledger.Outcome { return ledger.Inserted })

			var n struct {
				Payments int `db:"payments"`
				Events   int `db:"events"`
			}
			if err := db.Get(&n, "SELECT (SELECT COUNT(*) FROM payments) AS payments, (SELECT COUNT(*) FROM payment_events) AS events"); err != nil {
				t.Fatal(err)
			}
			if want := stored + nWorkers*perWorker; n.Payments != want || n.Events != want {
				t.Errorf("%d payments and %d events, want %d each", n.Payments, n.Events, want)
			}
			checkOrders("insert")

			// Then the same layout settles: each worker settles its PENDING
			// payments (to SUCCESS or FAILED), repeats some final ones and
			// records new payments, all in one batch again.
			settles := make([][]ledger.Payment, nWorkers)
			want := map[string]ledger.Outcome{}
			for w := range nWorkers {
				for j, p := range batches[w] {
					switch {
					case p.Status == ledger.StatusPending:
						p.Status = []ledger.Status{ledger.StatusSuccess, ledger.StatusFailed}[rng.IntN(2)]
						if p.Status == ledger.StatusSuccess {
							paid[p.OrderID] += p.Amount
						}
						want[p.PaymentID] = ledger.Settled
					case j%4 == 0:
						want[p.PaymentID] = ledger.Unchanged
					default:
						continue
					}
					settles[w] = append(settles[w], p)
				}
				for j := range perWorker / 4 {
					i := w*perWorker + j
					p := pay(fmt.Sprintf("CQ%06d", i), orderID(i*7), 100+rng.Int64N(900),
						[]ledger.Status{ledger.StatusSuccess, ledger.StatusPending}[rng.IntN(2)])
					if p.Status == ledger.StatusSuccess {
						paid[p.OrderID] += p.Amount
					}
					want[p.PaymentID] = ledger.Inserted
					settles[w] = append(settles[w], p)
				}
				rng.Shuffle(len(settles[w]), func(i, j int) { settles[w][i], settles[w][j] = settles[w][j], settles[w][i] })
			}
			runChunks("settle", settles, func(p ledger.Payment) ledger.Outcome { return want[p.PaymentID] })
			checkOrders("settle")
		})
	}
}

// TestBulkLoadSkippedRows: a transaction on another order stores one of the
// bulk batch's new payment ids (or gateway refs) after the batch read them.
// LOAD DATA skips that row; the ledger must notice, take its load back and
// decide the batch again, so the row becomes a DUPLICATE_CONFLICT and
// everything else is stored once.
func TestBulkLoadSkippedRows(t *testing.T) {
	for _, tc := range []struct {
		name     string
		commit   bool // the other transaction commits (else it rolls back)
		sameRef  bool // it takes our gateway ref rather than our payment id
		wantCode string
	}{
		{"payment id, committed", true, false, ledger.CodeDuplicateConflict},
		{"gateway ref, committed", true, true, ledger.CodeDuplicateConflict},
		{"payment id, rolled back", false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, db := newLedger(t)
			ctx := context.Background()
			insertOrder(t, db, "O1", 1_000_000, "USD")
			insertOrder(t, db, "O2", 1_000_000, "USD")

			// The other transaction holds O2 and an uncommitted payment.
			other, err := db.BeginTxx(ctx, ledger.TxOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer other.Rollback()
			theirs := pay("X1", "O2", 100, ledger.StatusSuccess)
			theirs.GatewayRef = "GX"
			if tc.sameRef {
				theirs.PaymentID = "X1-theirs"
			}
			if _, err := l.RecordTx(ctx, other, ledger.SourceAPI, "", []ledger.Payment{theirs}); err != nil {
				t.Fatal(err)
			}

			batch := []ledger.Payment{}
			for i := range 2 * ledger.BulkMinRows() {
				batch = append(batch, pay(fmt.Sprintf("N%04d", i), "O1", 10, ledger.StatusSuccess))
			}
			mine := pay("X1", "O1", 100, ledger.StatusSuccess)
			mine.GatewayRef = "GX"
			batch = append(batch[:7], append([]ledger.Payment{mine}, batch[7:]...)...)

			_, redecided0 := ledger.BulkCounters()
			type outcome struct {
				res []ledger.Result
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				res, err := l.Record(ctx, ledger.SourceImport, "import/race", batch)
				done <- outcome{res, err}
			}()
			// Wait until our LOAD DATA waits for the other transaction's row
			// (a load of this size takes a few milliseconds otherwise).
			deadline := time.Now().Add(10 * time.Second)
			for {
				var waiting int
				if err := db.Get(&waiting, `SELECT COUNT(*) FROM information_schema.processlist
					WHERE db = DATABASE() AND info LIKE 'LOAD DATA%' AND time_ms > 300`); err != nil {
					t.Fatal(err)
				}
				if waiting > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the batch never waited for the other transaction")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if tc.commit {
				err = other.Commit()
			} else {
				err = other.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
			out := <-done
			if out.err != nil {
				t.Fatalf("Record: %v", out.err)
			}
			for i, r := range out.res {
				want, code := ledger.Inserted, ""
				if i == 7 && tc.wantCode != "" {
					want, code = ledger.Rejected, tc.wantCode
				}
				if r.Outcome != want || r.Code != code {
					t.Errorf("entry %d %s: %v %s %s, want %v %s", i, r.PaymentID, r.Outcome, r.Code, r.Message, want, code)
				}
			}
			if _, redecided := ledger.BulkCounters(); tc.commit && redecided == redecided0 {
				t.Error("the skipped row did not make the batch be decided again")
			}
			var n int
			if err := db.Get(&n, "SELECT COUNT(*) FROM payments"); err != nil {
				t.Fatal(err)
			}
			if want := len(batch); n != want { // ours or theirs
				t.Errorf("%d payments stored, want %d", n, len(batch))
			}
			var events int
			if err := db.Get(&events, "SELECT COUNT(*) FROM payment_events"); err != nil || events != n {
				t.Errorf("%d events (%v), want %d", events, err, n)
			}
			var o1 int64
			if err := db.Get(&o1, "SELECT paid_amount FROM orders WHERE order_id = 'O1'"); err != nil {
				t.Fatal(err)
			}
			wantPaid := int64(10 * (len(batch) - 1))
			if !tc.commit {
				wantPaid += 100
			}
			if o1 != wantPaid {
				t.Errorf("O1 paid %d, want %d", o1, wantPaid)
			}
		})
	}
}

// TestBulkNeverWaitsForOtherOrders pins down the cause of the deadlocks
// between import chunks: a batch must not wait for another transaction's
// uncommitted payments of orders the batch does not touch, whatever plans
// the optimizer picks. The payments table's statistics are frozen at a
// small, skewed sample (as they lag during an import), which makes scans
// attractive; a locking read that scans waits for every uncommitted row it
// meets, and with a second transaction doing the same the two deadlock.
func TestBulkNeverWaitsForOtherOrders(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	// The orders' statistics, too, describe a much smaller table.
	db.MustExec("INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at) VALUES " +
		"('OTHER', 1000, 'USD', '2026-01-01', '2026-01-01'), ('WO00000', 1000, 'USD', '2026-01-01', '2026-01-01')")
	db.MustExec("ALTER TABLE orders STATS_AUTO_RECALC = 0")
	db.MustExec("ANALYZE TABLE orders PERSISTENT FOR ALL")
	var sb strings.Builder
	for i := 1; i < 2000; i++ {
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "('WO%05d', 1000, 'USD', '2026-01-01', '2026-01-01')", i)
	}
	db.MustExec("INSERT INTO orders (order_id, order_amount, currency, created_at, updated_at) VALUES " + sb.String())
	var seed []ledger.Payment
	for i := range 400 {
		seed = append(seed, pay(fmt.Sprintf("WS%04d", i), "WO00000", 1, ledger.StatusSuccess))
	}
	if _, err := l.Record(ctx, ledger.SourceImport, "seed", seed); err != nil {
		t.Fatal(err)
	}
	db.MustExec("ALTER TABLE payments STATS_AUTO_RECALC = 0")
	db.MustExec("ANALYZE TABLE payments PERSISTENT FOR ALL")

	// Another transaction holds uncommitted payments of its own order.
	other, err := db.BeginTxx(ctx, ledger.TxOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	var theirs []ledger.Payment
	for i := range 50 {
		p := pay(fmt.Sprintf("WP%05d-o", i*40), "OTHER", 1, ledger.StatusSuccess)
		p.GatewayRef = fmt.Sprintf("wg%05d-o", i*40)
		theirs = append(theirs, p)
	}
	if _, err := l.RecordTx(ctx, other, ledger.SourceAPI, "", theirs); err != nil {
		t.Fatal(err)
	}

	var batch []ledger.Payment
	for i := range 2000 {
		p := pay(fmt.Sprintf("WP%05d", i), fmt.Sprintf("WO%05d", i), 10, ledger.StatusSuccess)
		p.GatewayRef = fmt.Sprintf("wg%05d", i)
		batch = append(batch, p)
	}
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tx, err := db.BeginTxx(tctx, ledger.TxOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	start := time.Now()
	if _, err := l.RecordTx(tctx, tx, ledger.SourceImport, "import/w", batch); err != nil {
		t.Fatalf("RecordTx while another transaction holds uncommitted payments of another order: %v (after %v)", err, time.Since(start))
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, l, "WO00000", 410, ledger.OrderPending)
	checkOrder(t, l, "OTHER", 50, ledger.OrderPending)
}

// TestBulkFindsStoredPayments: a large batch of mostly new payments skips
// reading payments by id where a probe finds none stored, and looks up only
// the gateway refs of stored payments before its LOAD DATA. Neither may
// miss anything: repeats of stored payments scattered among new ids (at
// run edges and in between, with ids whose characters sort differently in
// other collations) are found, a settlement claiming a ref held by a
// payment outside the batch and a new payment reusing such a ref are
// rejected, and paid_amount stays the sum of the SUCCESS payments.
func TestBulkFindsStoredPayments(t *testing.T) {
	l, db := newLedger(t)
	ctx := context.Background()
	insertOrder(t, db, "O1", 1_000_000_000, "USD")
	insertOrder(t, db, "O2", 1_000_000_000, "USD")
	odd := []string{"R", "R#1", "R!1", "R1", "R~1", "R\u00b71", "Rü1", "R😀1", "R😀1-x"}
	var newOdd []string
	for _, id := range odd {
		newOdd = append(newOdd, id+"0", id+"!2", id+"~")
	}
	var ids []string
	stored := map[int]bool{}
	for i := range 1500 {
		ids = append(ids, fmt.Sprintf("Q%05d", i))
		if i%37 == 0 || i%100 == 0 || i%100 == 99 || i%100 == 50 || i == 1499 {
			stored[i] = true
		}
	}
	var first []ledger.Payment
	for i, id := range ids {
		if stored[i] {
			first = append(first, pay(id, "O1", 10+int64(i), []ledger.Status{ledger.StatusPending, ledger.StatusSuccess}[i%2]))
		}
	}
	for _, id := range odd {
		first = append(first, pay(id, "O1", 7, ledger.StatusPending))
	}
	first = append(first,
		with(pay("H1", "O2", 5, ledger.StatusSuccess), func(p *ledger.Payment) { p.GatewayRef = "HELD-1" }),
		with(pay("H2", "O2", 5, ledger.StatusSuccess), func(p *ledger.Payment) { p.GatewayRef = "HELD-2" }),
		pay("ELSEWHERE", "O2", 5, ledger.StatusPending),
	)
	if _, err := l.Record(ctx, ledger.SourceImport, "first", first); err != nil {
		t.Fatal(err)
	}

	var batch []ledger.Payment
	var want []ledger.Outcome
	add := func(p ledger.Payment, o ledger.Outcome) {
		batch = append(batch, p)
		want = append(want, o)
	}
	for i, id := range ids {
		p := pay(id, "O1", 10+int64(i), []ledger.Status{ledger.StatusPending, ledger.StatusSuccess}[i%2])
		switch {
		case !stored[i]:
			p.Amount = 1000 + int64(i)
			p.GatewayRef = "GQ-" + id
			add(p, ledger.Inserted)
		case i%2 == 0 && i%3 == 0: // PENDING, settles
			p.Status, p.GatewayRef = ledger.StatusSuccess, "SQ-"+id
			add(p, ledger.Settled)
		default:
			add(p, ledger.Unchanged)
		}
	}
	for _, id := range odd {
		add(with(pay(id, "O1", 7, ledger.StatusSuccess), func(p *ledger.Payment) { p.GatewayRef = "SR-" + id }), ledger.Settled)
	}
	for _, id := range newOdd {
		add(pay(id, "O1", 3, ledger.StatusSuccess), ledger.Inserted)
	}
	heldSettle := with(pay("R#1", "O1", 7, ledger.StatusSuccess), func(p *ledger.Payment) { p.GatewayRef = "HELD-1" })
	batch[slices.IndexFunc(batch, func(p ledger.Payment) bool { return p.PaymentID == "R#1" })] = heldSettle
	want[slices.IndexFunc(batch, func(p ledger.Payment) bool { return p.PaymentID == "R#1" })] = ledger.Rejected
	add(pay("ELSEWHERE", "O1", 5, ledger.StatusPending), ledger.Rejected)
	rng := rand.New(rand.NewPCG(5, 6))
	perm := rng.Perm(len(batch))
	shuffled, shuffledWant := make([]ledger.Payment, len(batch)), make([]ledger.Outcome, len(batch))
	for i, j := range perm {
		shuffled[i], shuffledWant[i] = batch[j], want[j]
	}

	res, err := l.Record(ctx, ledger.SourceImport, "second", shuffled)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Outcome != shuffledWant[i] || (r.Outcome == ledger.Rejected && r.Code != ledger.CodeDuplicateConflict) {
			t.Errorf("%q: %v %s %s, want %v", r.PaymentID, r.Outcome, r.Code, r.Message, shuffledWant[i])
		}
	}

	// New payments only, one reusing a ref held outside the batch: the
	// LOAD skips it, and the batch is decided again with every ref.
	var third []ledger.Payment
	for i := range 300 {
		third = append(third, with(pay(fmt.Sprintf("T%04d", i), "O1", 4, ledger.StatusSuccess), func(p *ledger.Payment) { p.GatewayRef = fmt.Sprintf("GT%04d", i) }))
	}
	third[123] = with(pay("NEW-HELD", "O1", 9, ledger.StatusSuccess), func(p *ledger.Payment) { p.GatewayRef = "HELD-2" })
	_, redecided0 := ledger.BulkCounters()
	res, err = l.Record(ctx, ledger.SourceImport, "third", third)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if wantO := map[bool]ledger.Outcome{true: ledger.Rejected, false: ledger.Inserted}[i == 123]; r.Outcome != wantO {
			t.Errorf("%q: %v %s %s, want %v", r.PaymentID, r.Outcome, r.Code, r.Message, wantO)
		}
	}
	if _, redecided := ledger.BulkCounters(); redecided == redecided0 {
		t.Error("the batch was not decided again after its LOAD skipped a row")
	}

	// Many new ids but few inserts (the rest name no order): the inserts
	// go in with INSERT, which would fail on a taken ref rather than skip
	// it, so every ref is looked up first.
	var fourth []ledger.Payment
	for i := range 300 {
		fourth = append(fourth, pay(fmt.Sprintf("U%04d", i), "NO-SUCH-ORDER", 4, ledger.StatusSuccess))
	}
	fourth = append(fourth, with(pay("NEW-HELD", "O1", 9, ledger.StatusSuccess), func(p *ledger.Payment) { p.GatewayRef = "HELD-2" }),
		pay("U-OK", "O1", 9, ledger.StatusSuccess))
	res, err = l.Record(ctx, ledger.SourceImport, "fourth", fourth)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		wantO, code := ledger.Rejected, ledger.CodeOrderNotFound
		switch r.PaymentID {
		case "NEW-HELD":
			code = ledger.CodeDuplicateConflict
		case "U-OK":
			wantO, code = ledger.Inserted, ""
		}
		if r.Outcome != wantO || r.Code != code {
			t.Errorf("%d %q: %v %s %s, want %v %s", i, r.PaymentID, r.Outcome, r.Code, r.Message, wantO, code)
		}
	}

	var bad int
	if err := db.Get(&bad, `SELECT COUNT(*) FROM orders o WHERE paid_amount <> (SELECT COALESCE(SUM(payment_amount),0) FROM payments p
		WHERE p.order_id = o.order_id AND payment_status = 'SUCCESS')`); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d orders' paid_amount differs from their SUCCESS payments", bad)
	}
	var held string
	if err := db.Get(&held, "SELECT payment_id FROM payments WHERE gateway_ref = 'HELD-2'"); err != nil || held != "H2" {
		t.Errorf("HELD-2 is held by %q (%v), want H2", held, err)
	}
}

// What a bulk batch's rows share (the batch's time, the source, the
// reference) is set once for its LOAD statements; every row must still
// carry it, and a reference is stored as given, quotes and all.
func TestBulkRowsCarryTheBatchsTimeAndReference(t *testing.T) {
	defer ledger.SetBulkMinRows(2)()
	l, db := newLedger(t)
	insertOrder(t, db, "O-1", 1_000_000, "USD")
	batch := []ledger.Payment{pay("P-1", "O-1", 100, ledger.StatusSuccess), pay("P-2", "O-1", 200, ledger.StatusPending),
		pay("P-3", "O-1", 300, ledger.StatusFailed)}
	loads, _ := ledger.BulkCounters()
	ref := `import/it's "quoted"\`
	if _, err := l.Record(context.Background(), ledger.SourceImport, ref, batch); err != nil {
		t.Fatal(err)
	}
	if after, _ := ledger.BulkCounters(); after-loads < 2 {
		t.Fatalf("%d LOAD DATA statements ran, want payments and events loaded in bulk", after-loads)
	}
	var stamps []time.Time
	if err := db.Select(&stamps, "SELECT updated_at FROM payments UNION ALL SELECT created_at FROM payment_events"); err != nil {
		t.Fatal(err)
	}
	if len(stamps) != 6 {
		t.Fatalf("%d payment and event rows, want 6", len(stamps))
	}
	for _, s := range stamps[1:] {
		if !s.Equal(stamps[0]) || s.IsZero() {
			t.Fatalf("rows of one batch carry different times: %v", stamps)
		}
	}
	var refs []string
	if err := db.Select(&refs, "SELECT CONCAT(source, ' ', reference) FROM payment_events"); err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if r != "import "+ref {
			t.Fatalf("event source and reference %q, want %q", r, "import "+ref)
		}
	}
}
