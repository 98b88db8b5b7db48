package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/database"
	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/loaddata"
	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/money"
)

// Statement sizes. IN lists hold at most inBatch ids, below MariaDB's
// in_predicate_conversion_threshold (default 1000): from there on a list
// of constants becomes a semi-join with a table value constructor, whose
// plan may scan the whole table (the 1000-id SUM of payments did while the
// table grew during an import and its statistics lagged). Below it every
// IN list is a range over exactly its keys, and the statements that lock
// rows also force the primary key, so whatever the statistics they lock
// just the rows they name.
//
// Multi-row writes take a few hundred rows, so each statement stays far
// below max_allowed_packet. From bulkMinRows new payments (or events) on,
// rows stream through LOAD DATA LOCAL INFILE instead: one statement for a
// whole import chunk.
const (
	inBatch     = 500
	insertBatch = 400
	updateBatch = 300
)

// bulkMinRows is the number of rows from which payments and payment_events
// are written with LOAD DATA LOCAL INFILE; a variable so tests can force
// either path.
var bulkMinRows = 200

// Counters for tests: LOAD DATA statements run, bulk writes decided again.
var bulkLoads, bulkRedecided atomic.Int64

// maxBulkAttempts bounds how often a batch is re-decided after LOAD DATA
// skipped rows (see writePayments and apply: the first attempt of a large
// batch looks up only some gateway refs, so it may need one more); the last
// attempt writes with INSERT, which reports a lost race as a retryable
// duplicate-key error.
const maxBulkAttempts = 4

// entry is one validated payment to decide.
type entry struct {
	res        *Result
	p          Payment
	settleOnly bool  // a settlement: only status/gateway_ref/failure_reason are given
	wantAmount int64 // Settlement.Amount: the stored amount must equal it
	// wantAmountText is a gateway's amount, read in the stored payment's
	// currency (GatewayResult.Amount).
	wantAmountText string
	ifPending      bool // Settlement.IfPending
	// gateway is, for an attempt, the gateway it is sent to, stored with
	// it; for a gateway's result, the gateway that sent it, which must be
	// the payment's when the payment names one.
	gateway string
	// fromInbox marks an early result applied by its attempt
	// (drainInbox): its gateway was answered 202 long ago and will not
	// hear of a refusal, so a refusal is kept as an audit event, and one
	// for another amount fails the attempt instead of leaving it waiting.
	fromInbox bool
}

// payRow is a payment's state inside the transaction: as loaded (under the
// order lock) or as created earlier in the batch.
type payRow struct {
	id, orderID string
	amount      int64
	currency    string
	status      Status
	method      string
	detailsCT   []byte // nil stores NULL (no details)
	details     string // plaintext, valid when haveDetails
	haveDetails bool
	gatewayRef  string    // "" stores NULL
	failure     string    // "" stores NULL
	gateway     string    // "" stores NULL: any configured gateway may settle it
	createdAt   time.Time // new rows only
	isNew       bool      // to be inserted
	dirty       bool      // loaded and changed: to be updated
}

type event struct {
	paymentID, orderID string
	from, to           Status // from "" stores NULL
	applied            bool
	note               string
}

// batch holds one apply call's state.
type batch struct {
	keys *encryption.Keyring
	src  Source
	ref  string
	now  time.Time
	// orders are the batch's orders as locked, and as re-evaluated once
	// written; touched are those a payment of changed: re-evaluate them.
	orders  map[string]*OrderState
	touched map[string]bool
	rows    map[string]*payRow
	// loaded says rows hold the stored payments of the entries to decide.
	loaded bool
	// refs maps each gateway_ref known to be taken to its payment. A ref
	// stays reserved for the whole batch even if its holder moves to
	// another ref, so inserts (written before updates) never collide.
	refs    map[string]string
	inserts []*payRow
	events  []event
	// gained is what the batch's decisions so far add to each order's
	// paid_amount, so a credit that would overflow it is refused as it is
	// decided (AMOUNT_OVERFLOW) rather than failing the transaction.
	gained map[string]int64
	// recorded, when set, counts the applied events written, by the
	// batch's source at the time; the caller reports it once the
	// transaction commits.
	recorded tally
}

// newBatch starts the decisions of one transaction.
func (l *Ledger) newBatch(src Source, ref string) (*batch, error) {
	if l.Keys == nil {
		return nil, errors.New("ledger has no keyring")
	}
	return &batch{
		keys:    l.Keys,
		src:     src,
		ref:     ref,
		now:     l.now().UTC().Truncate(time.Microsecond),
		orders:  map[string]*OrderState{},
		touched: map[string]bool{},
		rows:    map[string]*payRow{},
		refs:    map[string]string{},
		gained:  map[string]int64{},
	}, nil
}

// apply decides and writes entries inside tx: lock orders, load payments,
// decide in Go, write in batches, re-evaluate orders.
func (l *Ledger) apply(ctx context.Context, tx *sqlx.Tx, src Source, ref string, entries []entry) error {
	if len(entries) == 0 {
		return nil
	}
	b, err := l.newBatch(src, ref)
	if err != nil {
		return err
	}
	orderIDs := make([]string, len(entries))
	for i, e := range entries {
		orderIDs[i] = e.p.OrderID
	}
	// Sorted, so every transaction takes its locks in the same order.
	if err := b.lockOrders(ctx, tx, sortedUnique(orderIDs)); err != nil {
		return err
	}
	return b.run(ctx, tx, entries)
}

// run decides and writes entries whose orders b holds locked, then
// re-evaluates those orders. Payments a caller loaded first (to look at
// them before deciding) are not read again.
func (b *batch) run(ctx context.Context, tx *sqlx.Tx, entries []entry) error {
	var paymentIDs, gatewayRefs []string
	for _, e := range entries {
		paymentIDs = append(paymentIDs, e.p.PaymentID)
		if e.p.GatewayRef != "" {
			gatewayRefs = append(gatewayRefs, e.p.GatewayRef)
		}
	}
	paymentIDs, gatewayRefs = sortedUnique(paymentIDs), sortedUnique(gatewayRefs)
	initial := make([]Result, len(entries))
	for i := range entries {
		initial[i] = *entries[i].res
	}
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			// LOAD DATA skipped rows: another transaction stored some of
			// our payment ids or gateway refs after we read them, or the
			// first attempt left a taken gateway ref unread. Those rows
			// are committed now; decide the whole batch again against
			// them. (Or the first attempt, reading only some refs, found
			// too few inserts for LOAD DATA; see below.)
			b.reset()
			for i := range entries {
				*entries[i].res = initial[i]
			}
		}
		if !b.loaded {
			if err := b.loadPayments(ctx, tx, paymentIDs); err != nil {
				return err
			}
		}
		// A large batch of mostly new payments is written with LOAD DATA,
		// which checks the unique keys itself and reports what it skipped.
		// So its first attempt looks up only the gateway refs given with
		// stored payments (a settlement's new ref must be judged before
		// the UPDATE, which would fail on a taken one): a new payment
		// whose ref is taken makes the LOAD skip it, and the next attempt
		// looks up every ref. When the load stores every row, no ref left
		// unread was taken, and the decisions are those a full look-up
		// would have given.
		refs := gatewayRefs
		partial := attempt == 1 && len(paymentIDs)-len(b.rows) >= bulkMinRows
		if partial {
			refs = b.refsOfStored(entries)
		}
		if err := b.loadGatewayRefs(ctx, tx, refs); err != nil {
			return err
		}
		for i := range entries {
			if err := b.decide(&entries[i]); err != nil {
				return err
			}
		}
		if partial && len(b.inserts) < bulkMinRows && len(refs) < len(gatewayRefs) {
			// Too few inserts for LOAD DATA after all, and an INSERT
			// fails on a taken ref instead of skipping it: decide again
			// with every ref looked up.
			continue
		}
		done, err := b.writePayments(ctx, tx, attempt < maxBulkAttempts)
		if err != nil {
			return err
		}
		if done {
			break
		}
	}
	if err := b.writeEvents(ctx, tx); err != nil {
		return err
	}
	if b.recorded != nil {
		for _, ev := range b.events {
			if ev.applied {
				b.recorded.add(b.src, ev.to, 1)
			}
		}
	}
	return b.reevaluateOrders(ctx, tx)
}

// reset forgets every decision and the loaded payments, keeping the locked
// orders.
func (b *batch) reset() {
	clear(b.rows)
	clear(b.refs)
	clear(b.touched)
	clear(b.gained)
	b.inserts, b.events, b.loaded = nil, nil, false
}

// lockOrders locks the batch's orders in ascending order_id order. Go's
// byte order equals utf8mb4_bin's code-point order (ids hold no space,
// see package ident), so chunks of the sorted list are locked in one global order too.
func (b *batch) lockOrders(ctx context.Context, tx *sqlx.Tx, ids []string) error {
	return inChunks(ids, inBatch, func(chunk []string) error {
		q := "SELECT order_id, order_amount, currency, order_status, paid_amount FROM orders FORCE INDEX (PRIMARY) " +
			"WHERE order_id IN (" + placeholders(len(chunk)) + ") ORDER BY order_id FOR UPDATE"
		rows, err := tx.QueryContext(ctx, q, anySlice(chunk)...)
		if err != nil {
			return fmt.Errorf("lock orders: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			o := &OrderState{}
			if err := rows.Scan(&o.OrderID, &o.Amount, &o.Currency, &o.Status, &o.PaidAmount); err != nil {
				return fmt.Errorf("lock orders: %w", err)
			}
			b.orders[o.OrderID] = o
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("lock orders: %w", err)
		}
		return nil
	})
}

// loadPayments reads the stored payments with the batch's ids. It is a
// plain read on purpose (see the package doc): at READ COMMITTED it sees
// every committed row, and the payments of the orders we hold cannot change
// until we commit. A payment of another order is only ever rejected (its
// order_id never changes), and one inserted concurrently is caught by the
// primary key when we write.
func (b *batch) loadPayments(ctx context.Context, tx *sqlx.Tx, ids []string) error {
	ids, err := storedCandidates(ctx, tx, ids)
	if err != nil {
		return fmt.Errorf("load payments: %w", err)
	}
	err = inChunks(ids, inBatch, func(chunk []string) error {
		q := "SELECT payment_id, order_id, payment_amount, currency, payment_status, payment_method, payment_details, " +
			"gateway_ref, failure_reason, gateway FROM payments WHERE payment_id IN (" +
			placeholders(len(chunk)) + ")"
		rows, err := tx.QueryContext(ctx, q, anySlice(chunk)...)
		if err != nil {
			return fmt.Errorf("load payments: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			r := &payRow{}
			var gw, failure, gateway sql.NullString
			if err := rows.Scan(&r.id, &r.orderID, &r.amount, &r.currency, &r.status, &r.method, &r.detailsCT,
				&gw, &failure, &gateway); err != nil {
				return fmt.Errorf("load payments: %w", err)
			}
			r.gatewayRef, r.failure, r.gateway = gw.String, failure.String, gateway.String
			b.rows[r.id] = r
			if r.gatewayRef != "" {
				b.refs[r.gatewayRef] = r.id
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("load payments: %w", err)
		}
		return nil
	})
	b.loaded = err == nil
	return err
}

// refsOfStored returns, sorted, the gateway refs that entries give with
// payment ids already stored (loaded into b.rows).
func (b *batch) refsOfStored(entries []entry) []string {
	var refs []string
	for i := range entries {
		p := &entries[i].p
		if p.GatewayRef == "" {
			continue
		}
		if _, stored := b.rows[p.PaymentID]; stored {
			refs = append(refs, p.GatewayRef)
		}
	}
	return sortedUnique(refs)
}

// Probing for stored payment ids: runs of probeRun consecutive ids (in
// sorted order), up to probeRuns runs per statement.
const (
	probeMinIDs = 64
	probeRun    = 100
	probeRuns   = 250
)

// storedCandidates returns the ids (sorted, unique, valid) that may belong
// to stored payments, dropping runs of consecutive ids with no payment_id
// at all between the run's first and last: one statement probes a few
// hundred runs, each a primary-key range read of at most one row. A fresh
// import's ids are mostly new and often consecutive, so its reads of
// payments by id mostly disappear.
//
// Exact: valid ids hold no space and no character below it (package ident),
// so Go's byte order is utf8mb4_bin's (PAD SPACE) order and
// every id of a run lies within [first, last] for the server, too; a stored
// id equal to one of ours is found by the range. Like the reads it saves,
// the probe is a plain read of committed rows (see loadPayments).
func storedCandidates(ctx context.Context, tx *sqlx.Tx, ids []string) ([]string, error) {
	if len(ids) < probeMinIDs {
		return ids, nil
	}
	type run struct{ lo, hi int }
	var runs []run
	for lo := 0; lo < len(ids); lo += probeRun {
		runs = append(runs, run{lo, min(lo+probeRun, len(ids))})
	}
	var keep []string
	err := inChunks(runs, probeRuns, func(chunk []run) error {
		var q strings.Builder
		args := make([]any, 0, 2*len(chunk))
		for i, r := range chunk {
			if i > 0 {
				q.WriteString(" UNION ALL ")
			}
			fmt.Fprintf(&q, "(SELECT %d FROM payments FORCE INDEX (PRIMARY) WHERE payment_id BETWEEN ? AND ? LIMIT 1)", i)
			args = append(args, ids[r.lo], ids[r.hi-1])
		}
		rows, err := tx.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return fmt.Errorf("probe payment ids: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var i int
			if err := rows.Scan(&i); err != nil {
				return fmt.Errorf("probe payment ids: %w", err)
			}
			if i < 0 || i >= len(chunk) {
				return fmt.Errorf("probe payment ids: unexpected run %d", i)
			}
			keep = append(keep, ids[chunk[i].lo:chunk[i].hi]...)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	// Runs come back in any order; the reads and locks need none, but
	// sorted keeps their IN lists ranges.
	slices.Sort(keep)
	return keep, nil
}

// loadGatewayRefs finds which payments already hold the batch's gateway
// refs, so a reused ref becomes one rejected row instead of a duplicate-key
// error that would abort the batch. Like loadPayments it is a plain read; a
// ref claimed concurrently by a payment of another order is caught by the
// unique key when we write.
func (b *batch) loadGatewayRefs(ctx context.Context, tx *sqlx.Tx, refs []string) error {
	unknown := make([]string, 0, len(refs))
	for _, r := range refs {
		if _, known := b.refs[r]; !known {
			unknown = append(unknown, r)
		}
	}
	refs = unknown
	return inChunks(refs, inBatch, func(chunk []string) error {
		q := "SELECT gateway_ref, payment_id FROM payments WHERE gateway_ref IN (" +
			placeholders(len(chunk)) + ")"
		rows, err := tx.QueryContext(ctx, q, anySlice(chunk)...)
		if err != nil {
			return fmt.Errorf("look up gateway refs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var ref, id string
			if err := rows.Scan(&ref, &id); err != nil {
				return fmt.Errorf("look up gateway refs: %w", err)
			}
			b.refs[ref] = id
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("look up gateway refs: %w", err)
		}
		return nil
	})
}

// decide applies the rules of SPEC sections 3 and 5 to one entry against
// the current state, updating the state, the pending writes and the result.
func (b *batch) decide(e *entry) error {
	p := &e.p
	r := b.rows[p.PaymentID]
	if r == nil {
		return b.insert(e)
	}

	// An existing id: only the status and its companions may differ.
	if r.orderID != p.OrderID {
		b.reject(e, r, CodeDuplicateConflict, fmt.Sprintf("payment %s already exists for another order", mask.ID(p.PaymentID)))
		return nil
	}
	if e.ifPending && r.status != StatusPending {
		e.res.Outcome, e.res.Status = Unchanged, r.status
		return nil
	}
	var note string // of the applied event, when it settles other than as given
	if e.settleOnly {
		if e.gateway != "" && r.gateway != "" && e.gateway != r.gateway {
			// Only the payment's own gateway may settle it. The callback
			// path refuses such a result before it gets here
			// (RouteGatewayResult); an early one is refused here, on record.
			if e.fromInbox {
				b.addEvent(r, r.status, p.Status, false, "refused: "+CodeWrongGateway+", the payment was sent to another gateway")
			}
			b.reject(e, r, CodeWrongGateway, fmt.Sprintf("payment %s was not sent to gateway %s", mask.ID(p.PaymentID), e.gateway))
			return nil
		}
		mismatch := false
		if e.wantAmountText != "" {
			v, err := money.Parse(e.wantAmountText, r.currency)
			switch {
			case err == nil:
				e.wantAmount = v
			case e.fromInbox:
				// Not even an amount of the payment's currency: not the
				// attempt's amount either.
				mismatch = true
			default:
				b.reject(e, r, CodeBadAmount, fmt.Sprintf("payment %s: amount: %v", mask.ID(p.PaymentID), err))
				return nil
			}
		}
		if e.wantAmount > 0 && e.wantAmount != r.amount {
			mismatch = true
		}
		if mismatch && (!e.fromInbox || r.status != StatusPending) {
			// Refused and kept on record. The gateway hears of it in the
			// callback's answer, so the attempt may still get its real
			// result (or time out).
			b.addEvent(r, r.status, p.Status, false, "refused: "+CodeAmountMismatch+", the gateway's amount differs from the payment's")
			b.reject(e, r, CodeDuplicateConflict, fmt.Sprintf("payment %s: settlement amount %d differs from the stored amount %d",
				mask.ID(p.PaymentID), e.wantAmount, r.amount))
			return nil
		}
		if mismatch {
			// An early result for another amount: its gateway was
			// answered 202 and sends nothing more, so waiting for the
			// attempt's timeout would only delay the same end. The
			// attempt fails now, and the event says why.
			note = fmt.Sprintf("%s: the gateway's early %s was for another amount", CodeAmountMismatch, p.Status)
			p.Status, p.FailureReason = StatusFailed, CodeAmountMismatch
			if holder, taken := b.refs[p.GatewayRef]; p.GatewayRef != "" && taken && holder != r.id {
				p.GatewayRef = "" // kept only when free: nothing may stop the failure
			}
		}
	} else {
		diff, err := b.differences(e, r)
		if err != nil {
			return err
		}
		if len(diff) > 0 {
			b.reject(e, r, CodeDuplicateConflict, fmt.Sprintf("payment %s already exists with a different %s",
				mask.ID(p.PaymentID), strings.Join(diff, ", ")))
			return nil
		}
	}

	if p.Status == r.status {
		// A repeat. Missing gateway_ref / failure_reason mean "not given"
		// (a re-sent callback or file may omit them); a different one is a
		// contradiction, not a repeat.
		if (p.GatewayRef == "" || p.GatewayRef == r.gatewayRef) && (p.FailureReason == "" || p.FailureReason == r.failure) {
			e.res.Outcome, e.res.Status = Unchanged, r.status
			return nil
		}
		b.reject(e, r, CodeDuplicateConflict, fmt.Sprintf("payment %s is already %s with a different gateway_ref or failure_reason",
			mask.ID(p.PaymentID), r.status))
		return nil
	}
	if r.status.Terminal() {
		// Terminal means terminal: refuse, but keep the attempt on record.
		b.addEvent(r, r.status, p.Status, false, fmt.Sprintf("refused: payment is already %s", r.status))
		b.reject(e, r, CodeBadTransition, fmt.Sprintf("payment %s is already %s and cannot become %s",
			mask.ID(p.PaymentID), r.status, mask.Show(string(p.Status))))
		return nil
	}

	// PENDING → SUCCESS / FAILED.
	if p.GatewayRef != "" && p.GatewayRef != r.gatewayRef {
		if holder, taken := b.refs[p.GatewayRef]; taken && holder != r.id {
			b.reject(e, r, CodeDuplicateConflict, fmt.Sprintf("gateway_ref %s is already used by payment %s", mask.Show(p.GatewayRef), mask.ID(holder)))
			return nil
		}
	}
	o := b.orders[r.orderID]
	if o == nil {
		// Cannot happen: r.orderID == p.OrderID, which was locked.
		return fmt.Errorf("record payment %s: order %s was not locked", r.id, r.orderID)
	}
	if p.Status == StatusSuccess && !b.credit(o, r.amount) {
		b.reject(e, r, CodeAmountOverflow, overflowMessage(p.PaymentID, o.OrderID))
		return nil
	}
	if p.GatewayRef != "" && p.GatewayRef != r.gatewayRef {
		b.refs[p.GatewayRef] = r.id
		r.gatewayRef = p.GatewayRef
	}
	if p.FailureReason != "" {
		r.failure = p.FailureReason
	}
	from := r.status
	r.status = p.Status
	if !r.isNew {
		r.dirty = true
	}
	b.touched[r.orderID] = true
	b.addEvent(r, from, r.status, true, note)
	e.res.Outcome, e.res.Status = Settled, r.status
	return nil
}

// credit adds amount to what the batch adds to order o's paid_amount and
// reports true, or reports false, changing nothing, when the order's sum
// would no longer fit the column (BIGINT, int64).
func (b *batch) credit(o *OrderState, amount int64) bool {
	sum, ok := addAmount(o.PaidAmount, b.gained[o.OrderID])
	if ok {
		sum, ok = addAmount(sum, amount)
	}
	if !ok {
		return false
	}
	b.gained[o.OrderID] += amount
	return true
}

func overflowMessage(paymentID, orderID string) string {
	return fmt.Sprintf("payment %s would take the paid amount of order %s past the largest amount stored (%d minor units)",
		mask.ID(paymentID), mask.ID(orderID), int64(math.MaxInt64))
}

// differences names the fields other than the status and its companions in
// which p differs from the stored payment r.
func (b *batch) differences(e *entry, r *payRow) ([]string, error) {
	p := &e.p
	var diff []string
	if p.Amount != r.amount {
		diff = append(diff, "payment_amount")
	}
	if p.Currency != "" && p.Currency != r.currency {
		diff = append(diff, "currency")
	}
	if p.Method != r.method {
		diff = append(diff, "payment_method")
	}
	details, err := b.storedDetails(r)
	if err != nil {
		return nil, err
	}
	if p.Details != details {
		diff = append(diff, "payment_details") // named, never shown
	}
	// An attempt's gateway, once stored, is part of it; one stored
	// without (imported, or from before attempts named theirs) takes any.
	if e.gateway != "" && r.gateway != "" && e.gateway != r.gateway {
		diff = append(diff, "gateway")
	}
	return diff, nil
}

// insert handles an entry whose payment_id is not stored yet.
func (b *batch) insert(e *entry) error {
	p := &e.p
	if e.settleOnly {
		b.reject(e, nil, CodePaymentNotFound, fmt.Sprintf("payment %s not found", mask.ID(p.PaymentID)))
		return nil
	}
	o := b.orders[p.OrderID]
	if o == nil {
		b.reject(e, nil, CodeOrderNotFound, fmt.Sprintf("order %s not found", mask.ID(p.OrderID)))
		return nil
	}
	currency := p.Currency
	if currency == "" {
		currency = o.Currency
	}
	if currency != o.Currency {
		b.reject(e, nil, CodeCurrencyMismatch, fmt.Sprintf("payment currency %s differs from order %s currency %s",
			mask.Show(currency), mask.ID(p.OrderID), o.Currency))
		return nil
	}
	if p.GatewayRef != "" {
		if holder, taken := b.refs[p.GatewayRef]; taken {
			b.reject(e, nil, CodeDuplicateConflict, fmt.Sprintf("gateway_ref %s is already used by payment %s", mask.Show(p.GatewayRef), mask.ID(holder)))
			return nil
		}
	}
	if p.Status == StatusSuccess && !b.credit(o, p.Amount) {
		b.reject(e, nil, CodeAmountOverflow, overflowMessage(p.PaymentID, o.OrderID))
		return nil
	}
	var ct []byte
	if p.Details != "" {
		var err error
		ct, err = b.keys.Encrypt([]byte(p.Details), encryption.AAD(encryption.TablePayments, encryption.ColumnPaymentDetails, p.PaymentID))
		if err != nil {
			return fmt.Errorf("record payment %s: encrypt payment_details: %w", p.PaymentID, err)
		}
		if len(ct) > maxDetailsColumn {
			return fmt.Errorf("record payment %s: encrypted payment_details is %d bytes, column holds %d",
				p.PaymentID, len(ct), maxDetailsColumn)
		}
	}
	created := p.CreatedAt.UTC().Truncate(time.Microsecond)
	if p.CreatedAt.IsZero() {
		created = b.now
	}
	r := &payRow{
		id: p.PaymentID, orderID: p.OrderID, amount: p.Amount, currency: currency,
		status: p.Status, method: p.Method, detailsCT: ct, details: p.Details, haveDetails: true,
		gatewayRef: p.GatewayRef, failure: p.FailureReason, gateway: e.gateway, createdAt: created, isNew: true,
	}
	b.rows[r.id] = r
	b.inserts = append(b.inserts, r)
	if r.gatewayRef != "" {
		b.refs[r.gatewayRef] = r.id
	}
	b.touched[p.OrderID] = true
	b.addEvent(r, "", r.status, true, "")
	e.res.Outcome, e.res.Status = Inserted, r.status
	return nil
}

func (b *batch) reject(e *entry, r *payRow, code, msg string) {
	e.res.Outcome, e.res.Code, e.res.Message = Rejected, code, msg
	if r != nil {
		e.res.Status = r.status
	}
}

func (b *batch) addEvent(r *payRow, from, to Status, applied bool, note string) {
	b.events = append(b.events, event{paymentID: r.id, orderID: r.orderID, from: from, to: to, applied: applied, note: note})
}

// storedDetails decrypts a loaded payment's details once, for comparison:
// ciphertexts of equal plaintexts differ by their random nonce.
func (b *batch) storedDetails(r *payRow) (string, error) {
	if r.haveDetails {
		return r.details, nil
	}
	if r.detailsCT != nil {
		pt, err := b.keys.Decrypt(r.detailsCT, encryption.AAD(encryption.TablePayments, encryption.ColumnPaymentDetails, r.id))
		if err != nil {
			return "", fmt.Errorf("record payment %s: decrypt stored payment_details: %w", r.id, err)
		}
		r.details = string(pt)
	}
	r.haveDetails = true
	return r.details, nil
}

// writePayments inserts the new payments and updates the settled ones, in
// payment_id order. It reports false, having written nothing, when LOAD
// DATA skipped rows: the caller decides the batch again.
func (b *batch) writePayments(ctx context.Context, tx *sqlx.Tx, bulkOK bool) (bool, error) {
	slices.SortFunc(b.inserts, func(x, y *payRow) int { return strings.Compare(x.id, y.id) })
	if bulkOK && len(b.inserts) >= bulkMinRows {
		ok, err := b.loadNewPayments(ctx, tx)
		if err != nil || !ok {
			return ok, err
		}
	} else if err := b.insertPayments(ctx, tx); err != nil {
		return false, err
	}
	return true, b.updatePayments(ctx, tx)
}

const paymentColumns = "(payment_id, order_id, payment_amount, currency, payment_status, payment_method, payment_details, " +
	"gateway_ref, failure_reason, gateway, created_at, updated_at)"

// insertPayments writes the new payments with multi-row INSERTs. A row
// that a concurrent transaction stored meanwhile fails the statement with a
// duplicate-key error (1062, retryable).
func (b *batch) insertPayments(ctx context.Context, tx *sqlx.Tx) error {
	const row = "(?,?,?,?,?,?,?,?,?,?,?,?)"
	return inChunks(b.inserts, insertBatch, func(chunk []*payRow) error {
		args := make([]any, 0, len(chunk)*12)
		for _, r := range chunk {
			args = append(args, r.id, r.orderID, r.amount, r.currency, string(r.status), r.method, database.NullBytes(r.detailsCT),
				nullString(r.gatewayRef), nullString(r.failure), nullString(r.gateway), r.createdAt, b.now)
		}
		q := "INSERT INTO payments " + paymentColumns + " VALUES " + repeatJoin(row, len(chunk))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert payments: %w", err)
		}
		return nil
	})
}

// bulkSavepoint brackets a LOAD DATA of payments so that rows it stored can
// be taken back when it skipped others.
const bulkSavepoint = "ledger_bulk_payments"

// loadNewPayments streams the new payments in with one LOAD DATA LOCAL
// INFILE. LOAD DATA LOCAL skips rows whose payment_id or gateway_ref is
// taken (it implies IGNORE) and turns bad values into warnings: either
// means a transaction on another order stored one of our ids or refs after
// we read them (our rows were validated), so the statement is rolled back
// to its savepoint and false returned, for the batch to be decided again
// against what is stored now.
func (b *batch) loadNewPayments(ctx context.Context, tx *sqlx.Tx) (bool, error) {
	var buf bytes.Buffer
	buf.Grow(len(b.inserts) * 200)
	var created []byte
	for _, r := range b.inserts {
		loaddata.Field(&buf, []byte(r.id), '\t')
		loaddata.Field(&buf, []byte(r.orderID), '\t')
		buf.WriteString(strconv.FormatInt(r.amount, 10))
		buf.WriteByte('\t')
		loaddata.Field(&buf, []byte(r.currency), '\t')
		loaddata.Field(&buf, []byte(r.status), '\t')
		loaddata.Field(&buf, []byte(r.method), '\t')
		loaddata.NullableField(&buf, r.detailsCT, r.detailsCT == nil, '\t')
		loaddata.NullableField(&buf, []byte(r.gatewayRef), r.gatewayRef == "", '\t')
		loaddata.NullableField(&buf, []byte(r.failure), r.failure == "", '\t')
		loaddata.NullableField(&buf, []byte(r.gateway), r.gateway == "", '\t')
		created = loaddata.AppendDateTime(created[:0], r.createdAt)
		loaddata.Field(&buf, created, '\n')
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT "+bulkSavepoint); err != nil {
		return false, fmt.Errorf("load payments: %w", err)
	}
	// updated_at is the batch's own time, set once for the statement: the
	// server parses every byte a row carries. The literal is ours (digits
	// and separators), never input.
	n, warnings, err := loadDataCounted(ctx, tx, buf.Bytes(), "payments", `(payment_id, order_id, payment_amount,
		currency, payment_status, payment_method, payment_details, gateway_ref, failure_reason, gateway, created_at)
		SET updated_at = '`+string(loaddata.AppendDateTime(nil, b.now))+`'`)
	if err != nil {
		return false, fmt.Errorf("load payments: %w", err)
	}
	if n != int64(len(b.inserts)) || warnings > 0 {
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+bulkSavepoint); err != nil {
			return false, fmt.Errorf("load payments: %w", err)
		}
		bulkRedecided.Add(1)
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT "+bulkSavepoint); err != nil {
		return false, fmt.Errorf("load payments: %w", err)
	}
	return true, nil
}

// updatePayments writes the settled payments, a CASE UPDATE per chunk.
func (b *batch) updatePayments(ctx context.Context, tx *sqlx.Tx) error {
	var updates []*payRow
	for _, r := range b.rows {
		if r.dirty {
			updates = append(updates, r)
		}
	}
	slices.SortFunc(updates, func(x, y *payRow) int { return strings.Compare(x.id, y.id) })
	return inChunks(updates, updateBatch, func(chunk []*payRow) error {
		// One UPDATE per chunk: CASE picks each row's new values.
		var status, gw, failure, in strings.Builder
		var sArgs, gArgs, fArgs, inArgs []any
		for i, r := range chunk {
			status.WriteString(" WHEN ? THEN ?")
			gw.WriteString(" WHEN ? THEN ?")
			failure.WriteString(" WHEN ? THEN ?")
			if i > 0 {
				in.WriteByte(',')
			}
			in.WriteByte('?')
			sArgs = append(sArgs, r.id, string(r.status))
			gArgs = append(gArgs, r.id, nullString(r.gatewayRef))
			fArgs = append(fArgs, r.id, nullString(r.failure))
			inArgs = append(inArgs, r.id)
		}
		q := "UPDATE payments FORCE INDEX (PRIMARY) SET payment_status = CASE payment_id" + status.String() + " END" +
			", gateway_ref = CASE payment_id" + gw.String() + " END" +
			", failure_reason = CASE payment_id" + failure.String() + " END" +
			", updated_at = ? WHERE payment_id IN (" + in.String() + ")"
		args := slices.Concat(sArgs, gArgs, fArgs, []any{b.now}, inArgs)
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("update payments: %w", err)
		}
		return nil
	})
}

const eventColumns = "(payment_id, order_id, from_status, to_status, source, reference, applied, note, created_at)"

// writeEvents appends the audit events in decision order (event_id grows
// in that order).
func (b *batch) writeEvents(ctx context.Context, tx *sqlx.Tx) error {
	if len(b.events) >= bulkMinRows {
		return b.loadEvents(ctx, tx)
	}
	const row = "(?,?,?,?,?,?,?,?,?)"
	return inChunks(b.events, insertBatch, func(chunk []event) error {
		args := make([]any, 0, len(chunk)*9)
		for _, ev := range chunk {
			args = append(args, ev.paymentID, ev.orderID, nullString(string(ev.from)), string(ev.to), string(b.src),
				nullString(b.ref), ev.applied, nullString(clipNote(ev.note)), b.now)
		}
		q := "INSERT INTO payment_events " + eventColumns + " VALUES " + repeatJoin(row, len(chunk))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert payment events: %w", err)
		}
		return nil
	})
}

// loadEvents writes the events with one LOAD DATA LOCAL INFILE. The table
// has no unique key but event_id, which it assigns, so every row lands; a
// warning would mean a value was altered, which fails the batch.
func (b *batch) loadEvents(ctx context.Context, tx *sqlx.Tx) error {
	var buf bytes.Buffer
	buf.Grow(len(b.events) * 64)
	for _, ev := range b.events {
		loaddata.Field(&buf, []byte(ev.paymentID), '\t')
		loaddata.Field(&buf, []byte(ev.orderID), '\t')
		loaddata.NullableField(&buf, []byte(ev.from), ev.from == "", '\t')
		loaddata.Field(&buf, []byte(ev.to), '\t')
		if ev.applied {
			buf.WriteString("1\t")
		} else {
			buf.WriteString("0\t")
		}
		note := clipNote(ev.note)
		loaddata.NullableField(&buf, []byte(note), note == "", '\n')
	}
	// What every event of the batch shares is set once for the statement:
	// source and reference through session variables (the reference may
	// come from outside, so it is a bound parameter, never SQL text), the
	// time as our own literal.
	var ref any
	if b.ref != "" {
		ref = b.ref
	}
	if _, err := tx.ExecContext(ctx, "SET @payments_event_source = ?, @payments_event_ref = ?", string(b.src), ref); err != nil {
		return fmt.Errorf("load payment events: %w", err)
	}
	n, warnings, err := loadDataCounted(ctx, tx, buf.Bytes(), "payment_events", `(payment_id, order_id, from_status,
		to_status, applied, note) SET source = @payments_event_source, reference = @payments_event_ref,
		created_at = '`+string(loaddata.AppendDateTime(nil, b.now))+`'`)
	if err != nil {
		return fmt.Errorf("load payment events: %w", err)
	}
	if n != int64(len(b.events)) || warnings > 0 {
		return fmt.Errorf("load payment events: stored %d of %d rows with %d warnings", n, len(b.events), warnings)
	}
	return nil
}

func clipNote(note string) string {
	if utf8.RuneCountInString(note) > maxNoteLen {
		return string([]rune(note)[:maxNoteLen])
	}
	return note
}

// orderUpdate is an order's new figures.
type orderUpdate struct {
	id     string
	paid   int64
	status OrderStatus
}

// reevaluateOrders brings paid_amount and order_status of every order whose
// payments changed up to date, by increments rather than by summing the
// order's payments again. lockOrders read each order's paid_amount under
// this transaction's X lock, and a payment is only ever written by a
// transaction holding its order's lock, so that figure is the sum of the
// order's SUCCESS payments before this batch; the new sum adds what became
// SUCCESS here: new SUCCESS payments and PENDING → SUCCESS settlements
// (nothing ever leaves SUCCESS). Only orders whose figures changed are
// written: a few hundred with CASE UPDATEs, more through a temporary table
// (writeOrdersBulk).
func (b *batch) reevaluateOrders(ctx context.Context, tx *sqlx.Tx) error {
	gained := map[string]int64{}
	for _, r := range b.rows {
		// A loaded row is dirty only after PENDING → SUCCESS / FAILED, and
		// a new row counts with its status as the batch left it.
		if r.status == StatusSuccess && (r.isNew || r.dirty) {
			sum, ok := addAmount(gained[r.orderID], r.amount)
			if !ok { // a guard: decide refused such credits (batch.credit)
				return fmt.Errorf("update orders: paid amount of order %s overflows", r.orderID)
			}
			gained[r.orderID] = sum
		}
	}
	var updates []orderUpdate
	for id, o := range b.orders {
		if !b.touched[id] {
			continue
		}
		newPaid, ok := addAmount(o.PaidAmount, gained[id])
		if !ok {
			return fmt.Errorf("update orders: paid amount of order %s overflows", id)
		}
		newStatus := OrderPending
		if newPaid >= o.Amount {
			newStatus = OrderCompleted
		}
		if newPaid == o.PaidAmount && newStatus == o.Status {
			continue
		}
		o.PaidAmount, o.Status = newPaid, newStatus
		updates = append(updates, orderUpdate{id: id, paid: newPaid, status: newStatus})
	}
	slices.SortFunc(updates, func(x, y orderUpdate) int { return strings.Compare(x.id, y.id) })
	if len(updates) >= bulkMinRows {
		return b.writeOrdersBulk(ctx, tx, updates)
	}
	return inChunks(updates, inBatch, func(chunk []orderUpdate) error {
		var paid, status, in strings.Builder
		pArgs := make([]any, 0, 2*len(chunk))
		sArgs := make([]any, 0, 2*len(chunk))
		inArgs := make([]any, 0, len(chunk))
		for i, u := range chunk {
			paid.WriteString(" WHEN ? THEN ?")
			status.WriteString(" WHEN ? THEN ?")
			if i > 0 {
				in.WriteByte(',')
			}
			in.WriteByte('?')
			pArgs = append(pArgs, u.id, u.paid)
			sArgs = append(sArgs, u.id, string(u.status))
			inArgs = append(inArgs, u.id)
		}
		q := "UPDATE orders FORCE INDEX (PRIMARY) SET paid_amount = CASE order_id" + paid.String() + " END" +
			", order_status = CASE order_id" + status.String() + " END" +
			", updated_at = ? WHERE order_id IN (" + in.String() + ")"
		if _, err := tx.ExecContext(ctx, q, slices.Concat(pArgs, sArgs, []any{b.now}, inArgs)...); err != nil {
			return fmt.Errorf("update orders: %w", err)
		}
		return nil
	})
}

// orderFigures is the session temporary table writeOrdersBulk stages the
// new figures in. It lives on the transaction's connection only; CREATE and
// DROP TEMPORARY TABLE do not end the transaction.
const orderFigures = "ledger_order_figures"

// writeOrdersBulk writes many orders' new figures with one LOAD DATA into a
// temporary table and one UPDATE joining it to orders: a CASE UPDATE
// compares each row's id with every WHEN of its statement, which for an
// import chunk cost more than the row updates themselves. The join is
// pinned (STRAIGHT_JOIN from the staged rows, eq_ref on the orders' primary
// key), so it reads and writes exactly the orders listed, which this
// transaction has locked already: it never waits and locks nothing else
// (a temporary table takes no row locks). The table is InnoDB, not MEMORY,
// so it has no max_heap_table_size limit.
func (b *batch) writeOrdersBulk(ctx context.Context, tx *sqlx.Tx, updates []orderUpdate) error {
	for _, q := range []string{
		// Left over on this connection if an earlier call failed midway.
		"DROP TEMPORARY TABLE IF EXISTS " + orderFigures,
		"CREATE TEMPORARY TABLE " + orderFigures + " (" +
			"order_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, " +
			"paid_amount BIGINT NOT NULL, " +
			"order_status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, " +
			"PRIMARY KEY (order_id)) ENGINE=InnoDB",
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("update orders: stage figures: %w", err)
		}
	}
	var buf bytes.Buffer
	buf.Grow(len(updates) * 40)
	for _, u := range updates {
		loaddata.Field(&buf, []byte(u.id), '\t')
		buf.WriteString(strconv.FormatInt(u.paid, 10))
		buf.WriteByte('\t')
		loaddata.Field(&buf, []byte(u.status), '\n')
	}
	n, warnings, err := loadDataCounted(ctx, tx, buf.Bytes(), orderFigures, "(order_id, paid_amount, order_status)")
	if err != nil {
		return fmt.Errorf("update orders: stage figures: %w", err)
	}
	if n != int64(len(updates)) || warnings > 0 {
		return fmt.Errorf("update orders: staged %d of %d rows with %d warnings", n, len(updates), warnings)
	}
	res, err := tx.ExecContext(ctx, "UPDATE "+orderFigures+" f STRAIGHT_JOIN orders o FORCE INDEX (PRIMARY) ON o.order_id = f.order_id "+
		"SET o.paid_amount = f.paid_amount, o.order_status = f.order_status, o.updated_at = ?", b.now)
	if err != nil {
		return fmt.Errorf("update orders: %w", err)
	}
	// Every staged order exists and changes (its figures differ from the
	// locked row's): anything else is a bug, not a state to commit.
	if changed, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update orders: %w", err)
	} else if changed != int64(len(updates)) {
		return fmt.Errorf("update orders: updated %d of %d orders", changed, len(updates))
	}
	if _, err := tx.ExecContext(ctx, "DROP TEMPORARY TABLE "+orderFigures); err != nil {
		return fmt.Errorf("update orders: %w", err)
	}
	return nil
}

// addAmount adds two non-negative amounts, reporting overflow.
func addAmount(a, b int64) (int64, bool) {
	s := a + b
	return s, s >= a
}

// loadDataCounted is loaddata.Load, counted for tests.
func loadDataCounted(ctx context.Context, tx *sqlx.Tx, data []byte, table, columns string) (rows, warnings int64, err error) {
	bulkLoads.Add(1)
	return loaddata.Load(ctx, tx, data, table, columns)
}

func inChunks[T any](items []T, size int, fn func([]T) error) error {
	for len(items) > 0 {
		n := min(size, len(items))
		if err := fn(items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func placeholders(n int) string {
	return repeatJoin("?", n)
}

func repeatJoin(s string, n int) string {
	if n <= 0 {
		return ""
	}
	var sb strings.Builder
	sb.Grow(n * (len(s) + 1))
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(s)
	}
	return sb.String()
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
