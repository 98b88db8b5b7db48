// Package ledger is the one place that writes payments. It records new
// payments, applies settlements (PENDING → SUCCESS / FAILED), appends the
// payment_events audit trail and re-evaluates the affected orders, all in one
// transaction, so bulk imports, API calls and gateway callbacks can run
// concurrently against the same orders without double-counting money.
//
// # Concurrency design
//
// Every transaction that writes a payment first locks the payment's order
// row (SELECT ... FOR UPDATE, always in ascending order_id order, so two
// transactions never wait on each other's orders in a cycle). A payment is
// only ever written by a transaction holding its order's lock, so once the
// orders are locked the batch's payments cannot change under us.
//
// After that a transaction takes no lock it could wait for. Transactions
// run at READ COMMITTED (TxOptions), where each plain SELECT sees every
// committed row plus the transaction's own: the stored payments of the
// batch are read with plain reads, which never wait and never lock.
// Locking reads there would lock every row their plan visits; with a scan
// (which the optimizer chose for an old SUM over a 1000-id IN list while
// payments grew during an import) that included other import chunks'
// uncommitted rows, and those S locks, inherited as gap locks when a row
// went away, blocked the other chunks' inserts: a deadlock between chunks
// on different orders. IN lists stay below MariaDB's
// in_predicate_conversion_threshold, and the statements that lock or write
// rows pin their plans, so every statement reads or locks exactly the keys
// it lists. Inserts then wait only for a duplicate key, and import chunks
// of one file have distinct payment ids and gateway refs: they serialize
// on shared orders and otherwise proceed in parallel, without deadlocks.
//
// paid_amount is maintained by increments: the locking read of an order
// returns its paid_amount, which (as only lock holders write the order's
// payments) is the sum of its SUCCESS payments; the transaction adds the
// amounts that became SUCCESS in the batch and writes the orders whose
// figures changed, without summing payments again.
//
// The remaining races are between transactions on different orders that
// store the same new payment_id or gateway_ref, which the plain reads
// cannot see before it commits. The unique keys catch them: a bulk write
// (LOAD DATA, which skips such rows) is rolled back to a savepoint and the
// batch decided again against the committed row; a small batch's INSERT
// fails with MySQL error 1062 (or 1213 if the two also wait on each other),
// and retrying the whole transaction handles the row by the normal rules
// ([IsRetryable], [Ledger.Record]).
//
// Work per call is a constant number of statements per few hundred rows
// (batched IN lists, multi-row INSERTs, CASE UPDATEs), and for large
// batches new payments, their events and the orders' new figures stream in
// with one LOAD DATA LOCAL INFILE each, not one statement per payment. A
// large batch also skips reads the unique keys make redundant: payment ids
// are first probed by primary-key ranges (a fresh import's mostly are not
// stored), and the gateway refs of new payments are left to LOAD DATA,
// whose skipped rows make the batch be decided again with every ref read.
package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/mask"
)

// Status is a payment's lifecycle status.
type Status string

// Payment statuses. PENDING may move to SUCCESS or FAILED; both are terminal.
const (
	StatusPending Status = "PENDING"
	StatusSuccess Status = "SUCCESS"
	StatusFailed  Status = "FAILED"
)

// Terminal reports whether no further transition is allowed out of s.
func (s Status) Terminal() bool { return s == StatusSuccess || s == StatusFailed }

func (s Status) valid() bool { return s == StatusPending || s.Terminal() }

// Source says which channel a change came from; it is stored on each
// payment_events row.
type Source string

// Sources of payment changes.
const (
	SourceImport  Source = "import"
	SourceAPI     Source = "api"
	SourceGateway Source = "gateway"
)

// OrderStatus is an order's derived status.
type OrderStatus string

// Order statuses: COMPLETED exactly when the SUCCESS payments cover the
// order amount.
const (
	OrderPending   OrderStatus = "PENDING"
	OrderCompleted OrderStatus = "COMPLETED"
)

// Payment methods accepted by the schema.
var methods = map[string]bool{
	"CARD": true, "UPI": true, "NETBANKING": true, "WALLET": true,
	"BANK_TRANSFER": true, "CASH": true, "VOUCHER": true,
}

// Payment is one payment as submitted by an import row, an API call or a
// gateway. Only the ledger writes payments, so Details is given in plaintext
// and encrypted here.
type Payment struct {
	PaymentID string `json:"payment_id"`
	OrderID   string `json:"order_id"`
	// Amount is in minor units of Currency and must be positive.
	Amount int64 `json:"amount"`
	// Currency is an ISO 4217 code that must equal the order's; empty means
	// the order's currency.
	Currency string `json:"currency"`
	// Status is the payment's status; empty means PENDING.
	Status Status `json:"status"`
	// Method is one of CARD, UPI, NETBANKING, WALLET, BANK_TRANSFER, CASH,
	// VOUCHER.
	Method string `json:"method"`
	// Details is the sensitive card number / account / wallet id, in
	// plaintext; it is stored encrypted and never appears in errors.
	Details string `json:"details"`
	// GatewayRef is optional and unique across payments. On a repeat of a
	// stored payment an empty value means "not given", not "clear it".
	GatewayRef string `json:"gateway_ref"`
	// FailureReason is optional; empty on a repeat means "not given".
	FailureReason string `json:"failure_reason"`
	// CreatedAt is kept on insert only; zero means now.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Settlement is a gateway's (or the timeout's) final word on a payment that
// is identified by its id alone.
type Settlement struct {
	PaymentID string
	// Status must be SUCCESS or FAILED.
	Status Status
	// Amount, when positive, must equal the stored amount, else the
	// settlement is rejected as DUPLICATE_CONFLICT.
	Amount        int64
	GatewayRef    string
	FailureReason string
	// IfPending leaves a payment that is no longer PENDING as it is, with
	// no audit event: for a settlement of our own (an attempt timing out)
	// that may lose the race to its gateway's result. Decided under the
	// order's lock, like every settlement.
	IfPending bool
}

// Outcome is what happened to one submitted payment.
type Outcome int

// Outcomes of recording one payment.
const (
	// Inserted: a new payment was stored.
	Inserted Outcome = iota + 1
	// Unchanged: identical to the stored payment; nothing was written.
	Unchanged
	// Settled: a PENDING payment moved to SUCCESS or FAILED.
	Settled
	// Rejected: nothing about the payment changed; Result.Code says why.
	// A BAD_TRANSITION rejection is still kept as an applied=0 audit event.
	Rejected
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Inserted:
		return "Inserted"
	case Unchanged:
		return "Unchanged"
	case Settled:
		return "Settled"
	case Rejected:
		return "Rejected"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Reject codes, the same as the import reject codes of SPEC section 5 so
// importers can pass them through.
const (
	CodeMissingField      = "MISSING_FIELD"
	CodeBadAmount         = "BAD_AMOUNT"
	CodeBadCurrency       = "BAD_CURRENCY"
	CodeBadStatus         = "BAD_STATUS"
	CodeBadMethod         = "BAD_METHOD"
	CodeBadDate           = "BAD_DATE"
	CodeMalformed         = "MALFORMED"
	CodeOrderNotFound     = "ORDER_NOT_FOUND"
	CodeCurrencyMismatch  = "CURRENCY_MISMATCH"
	CodeDuplicateConflict = "DUPLICATE_CONFLICT"
	CodeBadTransition     = "BAD_TRANSITION"
	// CodePaymentNotFound is returned by Settle for an unknown payment id.
	CodePaymentNotFound = "PAYMENT_NOT_FOUND"
	// CodeAmountOverflow refuses a SUCCESS that would take its order's
	// paid_amount past what the column holds (int64 minor units).
	CodeAmountOverflow = "AMOUNT_OVERFLOW"
	// CodeWrongGateway refuses a gateway's result for a payment that was
	// sent to another gateway.
	CodeWrongGateway = "WRONG_GATEWAY"
	// CodeAmountMismatch is the failure_reason of an attempt failed by an
	// early gateway result for another amount, and names the refusal in
	// the audit event of an on-time one.
	CodeAmountMismatch = "AMOUNT_MISMATCH"
)

// Result reports the outcome for one submitted payment, in input order.
type Result struct {
	PaymentID string  `json:"payment_id"`
	Outcome   Outcome `json:"outcome"`
	// Status is the payment's status as this entry left it (a later entry
	// for the same id in the same call may still settle it), or empty when
	// no payment with this id is stored.
	Status Status `json:"status"`
	// Code and Message explain a Rejected outcome; the message never holds
	// payment details.
	Code    string `json:"code"`
	Message string `json:"message"`
}

// OrderState is an order's money and status as stored.
type OrderState struct {
	OrderID    string      `json:"order_id"`
	Amount     int64       `json:"amount"`
	Currency   string      `json:"currency"`
	PaidAmount int64       `json:"paid_amount"`
	Status     OrderStatus `json:"status"`
}

// ErrOrderNotFound is returned (wrapped) by OrderState for an unknown order.
var ErrOrderNotFound = errors.New("order not found")

// Ledger records payments. It is safe for concurrent use.
type Ledger struct {
	DB *sqlx.DB
	// Keys encrypts and decrypts payment_details.
	Keys *encryption.Keyring
	// Now is the clock for created_at/updated_at; nil means time.Now.
	Now func() time.Time
	// OnRetry, if set, is called before Record or Settle retries a
	// transaction after a transient conflict (for metrics); it must be safe
	// for concurrent use.
	OnRetry func(attempt int, err error)
	// OnRecorded, if set, is called after a transaction of the ledger
	// that inserted or settled payments commits, once per source and
	// status with how many payments it left in that status (for metrics).
	// A rejected payment, a repeat and a refused transition (an applied=0
	// event) are not counted. RecordTx, whose caller commits, reports
	// nothing: the caller hands its results to Recorded after the commit.
	// It must be safe for concurrent use.
	OnRecorded func(src Source, status Status, n int)
	// InboxRetention is how long an early gateway result waits in the
	// inbox for its attempt before it is swept; zero means
	// DefaultInboxRetention.
	InboxRetention time.Duration
}

// TxOptions returns the options a caller's transaction passed to RecordTx
// must be begun with: READ COMMITTED, so that the ledger's plain reads see
// every committed row and no statement takes gap locks. (On MySQL this
// needs binlog_format ROW or MIXED, the defaults.)
func TxOptions() *sql.TxOptions {
	return &sql.TxOptions{Isolation: sql.LevelReadCommitted}
}

// Retry policy for Record and Settle: enough attempts to ride out a burst
// of deadlocks between hot orders, with short jittered backoff.
const (
	maxAttempts = 12
	baseBackoff = 5 * time.Millisecond
	maxBackoff  = 250 * time.Millisecond
)

// IsRetryable reports whether err is a transient MySQL conflict after which
// rolling back and re-running the whole transaction may succeed: deadlock
// (1213), lock wait timeout (1205), or a duplicate key (1062) from a
// concurrent insert of the same payment_id or gateway_ref.
func IsRetryable(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1213, 1205, 1062:
		return true
	}
	return false
}

// Record stores payments in its own transaction (see TxOptions) and
// retries the whole transaction on the transient conflicts of IsRetryable.
// It returns one Result per payment, in order; rejected rows do not fail
// the call. An error means nothing was committed.
func (l *Ledger) Record(ctx context.Context, src Source, ref string, payments []Payment) ([]Result, error) {
	var results []Result
	err := l.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		results, err = l.RecordTx(ctx, tx, src, ref, payments)
		return err
	})
	if err != nil {
		return nil, err
	}
	l.Recorded(src, results)
	return results, nil
}

// Recorded reports to OnRecorded the payments that results of a committed
// RecordTx call of source src inserted or settled. Callers of RecordTx
// call it once their transaction has committed. A nil Ledger reports
// nothing.
func (l *Ledger) Recorded(src Source, results []Result) {
	if l == nil || l.OnRecorded == nil {
		return
	}
	t := tally{}
	for _, r := range results {
		if r.Outcome == Inserted || r.Outcome == Settled {
			t.add(src, r.Status, 1)
		}
	}
	l.report(t)
}

// tally counts a transaction's applied payment changes by source and the
// status they left their payments in, for OnRecorded.
type tally map[tallyKey]int

type tallyKey struct {
	src    Source
	status Status
}

func (t tally) add(src Source, status Status, n int) {
	if t != nil && n > 0 {
		t[tallyKey{src, status}] += n
	}
}

// report hands a committed transaction's tally to OnRecorded.
func (l *Ledger) report(t tally) {
	if l.OnRecorded == nil {
		return
	}
	for k, n := range t {
		l.OnRecorded(k.src, k.status, n)
	}
}

// RecordTx stores payments inside the caller's transaction, which must be
// begun with TxOptions (READ COMMITTED: the ledger's plain reads rely on
// seeing every committed row), so that they commit together with the
// caller's own rows (an import chunk's rejects and chunk-ledger row). The rules are those
// of SPEC sections 3 and 5:
//
//   - a new payment_id is inserted (order must exist with the same
//     currency) with a payment_events row;
//   - a repeat identical to the stored payment is Unchanged;
//   - a repeat differing only in status (gateway_ref, failure_reason) from
//     a PENDING payment to SUCCESS/FAILED is Settled with an event; out of a
//     terminal status it is Rejected BAD_TRANSITION and kept as an applied=0
//     event;
//   - any other difference, or a gateway_ref held by another payment, is
//     Rejected DUPLICATE_CONFLICT;
//   - repeats within payments are judged against the earlier entries;
//
// and every order whose payments changed is re-evaluated. On error the
// caller must roll back, and may retry the transaction if IsRetryable.
func (l *Ledger) RecordTx(ctx context.Context, tx *sqlx.Tx, src Source, ref string, payments []Payment) ([]Result, error) {
	if err := checkCall(src, ref); err != nil {
		return nil, err
	}
	results := make([]Result, len(payments))
	entries := make([]entry, 0, len(payments))
	for i := range payments {
		p := payments[i]
		if p.Status == "" {
			p.Status = StatusPending
		}
		results[i].PaymentID = p.PaymentID
		if code, msg := validate(&p); code != "" {
			results[i].Outcome, results[i].Code, results[i].Message = Rejected, code, msg
			continue
		}
		entries = append(entries, entry{res: &results[i], p: p})
	}
	if err := l.apply(ctx, tx, src, ref, entries); err != nil {
		return nil, fmt.Errorf("record %d payments (source %s, ref %q): %w", len(payments), src, ref, err)
	}
	return results, nil
}

// Settle applies a final status to the payment with the given id, in its
// own retried transaction: Settled from PENDING, Unchanged when the payment
// already has that status, Rejected BAD_TRANSITION (with an applied=0
// event) out of the other terminal status, Rejected PAYMENT_NOT_FOUND for an
// unknown id.
func (l *Ledger) Settle(ctx context.Context, src Source, ref string, s Settlement) (Result, error) {
	if err := checkCall(src, ref); err != nil {
		return Result{}, err
	}
	res := Result{PaymentID: s.PaymentID}
	p := Payment{PaymentID: s.PaymentID, Status: s.Status, GatewayRef: s.GatewayRef, FailureReason: s.FailureReason}
	code, msg := validateSettlement(&p)
	if code != "" {
		res.Outcome, res.Code, res.Message = Rejected, code, msg
		return res, nil
	}
	// A payment's order never changes, so a plain read outside the
	// transaction finds which order to lock; the payment itself is read
	// again under the lock.
	orderID, err := l.PaymentOrder(ctx, s.PaymentID)
	if errors.Is(err, ErrPaymentNotFound) {
		res.Outcome, res.Code = Rejected, CodePaymentNotFound
		res.Message = fmt.Sprintf("payment %s not found", mask.ID(s.PaymentID))
		return res, nil
	}
	if err != nil {
		return Result{}, err
	}
	p.OrderID = orderID
	out, err := l.settleOrder(ctx, orderID, src, ref, entry{p: p, settleOnly: true, wantAmount: s.Amount, ifPending: s.IfPending})
	if err != nil {
		return Result{}, err
	}
	return out.Result, nil
}

// OrderState returns the stored state of one order; the error wraps
// ErrOrderNotFound when it does not exist.
func (l *Ledger) OrderState(ctx context.Context, orderID string) (OrderState, error) {
	var st OrderState
	err := l.DB.QueryRowContext(ctx,
		"SELECT order_id, order_amount, currency, paid_amount, order_status FROM orders WHERE order_id = ?",
		orderID).Scan(&st.OrderID, &st.Amount, &st.Currency, &st.PaidAmount, &st.Status)
	if errors.Is(err, sql.ErrNoRows) {
		return OrderState{}, fmt.Errorf("order %s: %w", orderID, ErrOrderNotFound)
	}
	if err != nil {
		return OrderState{}, fmt.Errorf("read order %s: %w", orderID, err)
	}
	return st, nil
}

// inTx runs fn in a READ COMMITTED transaction, retrying the whole
// transaction with jittered exponential backoff while it fails with a
// retryable MySQL conflict.
func (l *Ledger) inTx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	backoff := baseBackoff
	for attempt := 1; ; attempt++ {
		err := l.runTx(ctx, fn)
		if err == nil {
			return nil
		}
		if !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		if attempt >= maxAttempts {
			return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
		}
		if l.OnRetry != nil {
			l.OnRetry(attempt, err)
		}
		// Jitter in [backoff/2, backoff] spreads out transactions that
		// just collided so they do not collide again in lock-step.
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (while retrying after: %v)", ctx.Err(), err)
		case <-time.After(d):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

func (l *Ledger) runTx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := l.DB.BeginTxx(ctx, TxOptions())
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error that matters is fn's
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// checkCall rejects programming errors that would otherwise fail the
// insert of every audit event.
func checkCall(src Source, ref string) error {
	switch src {
	case SourceImport, SourceAPI, SourceGateway:
	default:
		return fmt.Errorf("ledger: unknown source %q", src)
	}
	if n := len([]rune(ref)); n > maxReferenceLen {
		return fmt.Errorf("ledger: reference is %d characters, at most %d allowed", n, maxReferenceLen)
	}
	return nil
}
