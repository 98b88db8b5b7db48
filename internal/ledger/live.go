package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/acme/payments/internal/mask"
	"github.com/acme/payments/internal/money"
)

// Live payments: attempts made through the API or the CLI, gateway results
// and timeouts. Each step is one transaction that reads its order once,
// under the order's lock, and answers with the order as it left it; a
// gateway result that comes before its attempt waits in the inbox
// (gateway_inbox) and is applied by the attempt's own transaction.
//
// An attempt names the gateway it is sent to, and only that gateway's
// results settle it: a callback from another is refused at once
// (ErrWrongGateway), and an early one from another is refused by the
// attempt with an applied=0 audit event. A gateway result whose amount is
// not the attempt's never settles it as sent. On time, it is refused
// (DUPLICATE_CONFLICT, answered to the gateway) with an applied=0 event
// noting AMOUNT_MISMATCH, and the attempt keeps waiting for its real
// result or its timeout. Early, the gateway was answered 202 already and
// will not hear of the refusal, so the attempt fails at once with reason
// AMOUNT_MISMATCH, its applied event saying so, rather than waiting for a
// timeout that could only end the same way. Inbox rows whose attempt
// never comes are dropped: at once, on record, when the attempt is refused
// for good (its order is COMPLETED), else once older than InboxRetention,
// a few at a time by each result queued (sweepInbox), which keeps the
// table as small as the results of one retention period.

// CodeOrderCompleted rejects a new attempt on an order already paid.
const CodeOrderCompleted = "ORDER_COMPLETED"

// ErrPaymentNotFound is returned (wrapped) by PaymentOrder for an unknown
// payment id.
var ErrPaymentNotFound = errors.New("payment not found")

// ErrWrongGateway is returned (wrapped) by RouteGatewayResult for a result
// from a gateway other than the one its payment was sent to: it settles
// nothing and is not queued.
var ErrWrongGateway = errors.New("payment was sent to another gateway")

// DefaultInboxRetention is how long an early gateway result waits for its
// attempt by default: far longer than any attempt takes to follow its
// gateway's answer, and short enough that the results of attempts that
// never came do not pile up.
const DefaultInboxRetention = 24 * time.Hour

// inboxSweepBatch is how many expired inbox rows one queued result
// sweeps: more than one, so expired rows never accumulate.
const inboxSweepBatch = 10

// maxGatewayLen is the gateway columns' length (VARCHAR(64)).
const maxGatewayLen = 64

// maxAmountTextLen bounds an amount given as text (gateway_inbox.amount_text
// VARCHAR(40)); no valid amount is longer.
const maxAmountTextLen = 40

// Attempt is a live payment attempt as a caller gives it.
type Attempt struct {
	PaymentID string
	OrderID   string
	// Amount is decimal text in the major unit of Currency ("12.30"),
	// read by the currency's exponent once the order is locked.
	Amount string
	// Currency is an ISO 4217 code; empty means the order's.
	Currency string
	Method   string
	// Details is the card number, account or wallet id in plaintext; it is
	// stored encrypted and never appears in results or errors.
	Details string
	// Gateway is the gateway the attempt is sent to: only its results
	// settle the payment. Empty stores none, and then any gateway's
	// result may (as for imported payments).
	Gateway string
}

// GatewayResult is a verified gateway's final word on a payment, as the
// gateway sent it.
type GatewayResult struct {
	// OrderID is the payment's order, set by the order's workflow.
	OrderID   string `json:"order_id"`
	Gateway   string `json:"gateway"`
	PaymentID string `json:"payment_id"`
	// Status is SUCCESS or FAILED.
	Status Status `json:"status"`
	// Amount, when not empty, is the settled amount as decimal text in the
	// payment's currency; it must equal the stored amount.
	Amount        string `json:"amount"`
	GatewayRef    string `json:"gateway_ref"`
	FailureReason string `json:"failure_reason"`
}

// Check returns the reject code and message of a result the ledger refuses
// whatever is stored, or "".
func (g GatewayResult) Check() (code, msg string) {
	if len(g.Amount) > maxAmountTextLen {
		return CodeBadAmount, fmt.Sprintf("amount is %d characters, at most %d allowed", len(g.Amount), maxAmountTextLen)
	}
	if g.Gateway == "" || len(g.Gateway) > 64 {
		return CodeMalformed, "gateway name must be 1-64 bytes"
	}
	p := g.payment()
	return validateSettlement(&p)
}

func (g GatewayResult) payment() Payment {
	return Payment{PaymentID: g.PaymentID, OrderID: g.OrderID, Status: g.Status, GatewayRef: g.GatewayRef,
		FailureReason: strings.TrimSpace(g.FailureReason)}
}

func (g GatewayResult) ref() string { return "gateway:" + g.Gateway }

// AttemptResult is what a live step did and its order's state after it.
type AttemptResult struct {
	Result Result `json:"result"`
	// Order is the zero OrderState when the order does not exist.
	Order OrderState `json:"order"`
	// Settled lists the step's attempts that are no longer PENDING.
	Settled []string `json:"settled"`
}

// Attempt records a live attempt as PENDING, in one transaction that locks
// its order first: an unknown order is Rejected ORDER_NOT_FOUND, a new
// attempt on a COMPLETED order ORDER_COMPLETED; the same attempt again is
// Unchanged whatever its status since (it is judged on its content), and
// another under the same id DUPLICATE_CONFLICT. A gateway result queued
// for the payment is applied and cleared in the same transaction.
func (l *Ledger) Attempt(ctx context.Context, a Attempt) (AttemptResult, error) {
	var out AttemptResult
	var rec tally
	err := l.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		rec = tally{}
		out, err = l.attemptTx(ctx, tx, a, rec)
		return err
	})
	if err != nil {
		return AttemptResult{}, fmt.Errorf("payment attempt %s for order %s: %w", a.PaymentID, a.OrderID, err)
	}
	l.report(rec)
	return out, nil
}

// attemptTx decides an attempt in tx, counting the changes it applies in
// rec.
func (l *Ledger) attemptTx(ctx context.Context, tx *sqlx.Tx, a Attempt, rec tally) (AttemptResult, error) {
	out := AttemptResult{Result: Result{PaymentID: a.PaymentID}}
	reject := func(code, msg string) (AttemptResult, error) {
		out.Result.Outcome, out.Result.Code, out.Result.Message = Rejected, code, msg
		return out, nil
	}
	if code, msg := checkID("order_id", a.OrderID); code != "" {
		return reject(code, msg)
	}
	if len(a.Gateway) > maxGatewayLen || !utf8.ValidString(a.Gateway) {
		return reject(CodeMalformed, fmt.Sprintf("gateway must be valid UTF-8 of at most %d bytes", maxGatewayLen))
	}
	b, err := l.newBatch(SourceAPI, "api")
	if err != nil {
		return out, err
	}
	b.recorded = rec
	if err := b.lockOrders(ctx, tx, []string{a.OrderID}); err != nil {
		return out, err
	}
	o := b.orders[a.OrderID]
	if o == nil {
		return reject(CodeOrderNotFound, "order "+a.OrderID+" does not exist")
	}
	out.Order = *o
	p := Payment{PaymentID: a.PaymentID, OrderID: a.OrderID, Currency: a.Currency, Status: StatusPending,
		Method: a.Method, Details: a.Details}
	if p.Currency == "" {
		p.Currency = o.Currency
	}
	if _, ok := money.Lookup(p.Currency); !ok {
		return reject(CodeBadCurrency, fmt.Sprintf("currency %s is not an active ISO 4217 code", mask.Show(p.Currency)))
	}
	if p.Amount, err = money.Parse(a.Amount, p.Currency); err != nil {
		return reject(CodeBadAmount, "amount: "+err.Error())
	}
	if code, msg := validate(&p); code != "" {
		return reject(code, msg)
	}
	if err := b.loadPayments(ctx, tx, []string{p.PaymentID}); err != nil {
		return out, err
	}
	if stored := b.rows[p.PaymentID]; stored != nil {
		// A repeat of an attempt settled since is judged on its content,
		// not on its status.
		p.Status = stored.status
	} else if o.Status == OrderCompleted {
		// Refused for good (a COMPLETED order stays so): an early result
		// of this payment would wait in the inbox for nothing.
		if err := dropInbox(ctx, tx, b.now, p.PaymentID, a.OrderID, CodeOrderCompleted); err != nil {
			return out, err
		}
		return reject(CodeOrderCompleted, "order "+a.OrderID+" is already COMPLETED")
	}
	if err := b.run(ctx, tx, []entry{{res: &out.Result, p: p, gateway: a.Gateway}}); err != nil {
		return out, err
	}
	if out.Result.Outcome != Rejected && out.Result.Status == StatusPending {
		// Read only now that the payment's row is written (and locked by
		// this transaction): a callback queuing its result meanwhile waits
		// for our commit and then finds the payment (RouteGatewayResult),
		// so a result is never left in the inbox by both sides.
		if err := b.drainInbox(ctx, tx, &out); err != nil {
			return out, err
		}
	}
	out.Order = *o
	return out, nil
}

// drainInbox applies and clears the gateway results queued for the attempt
// out reports, in the order they came: one from the attempt's own gateway
// (or, for an attempt that names none, the first) settles it, the others
// are repeats or refusals kept as audit events. A result for another
// amount fails the attempt (AMOUNT_MISMATCH; see the package notes above).
func (b *batch) drainInbox(ctx context.Context, tx *sqlx.Tx, out *AttemptResult) error {
	queued, err := peekInbox(ctx, tx, out.Result.PaymentID)
	if afterInboxPeek != nil {
		afterInboxPeek()
	}
	if err != nil || len(queued) == 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM gateway_inbox WHERE payment_id = ?", out.Result.PaymentID); err != nil {
		return fmt.Errorf("clear gateway inbox: %w", err)
	}
	for _, g := range queued {
		g.OrderID = out.Order.OrderID
		if code, _ := g.Check(); code != "" {
			continue // cannot be queued (RouteGatewayResult checks), nor applied
		}
		b.reset()
		b.src, b.ref = SourceGateway, g.ref()
		var res Result
		e := entry{res: &res, p: g.payment(), settleOnly: true, wantAmountText: g.Amount, gateway: g.Gateway, fromInbox: true}
		if err := b.run(ctx, tx, []entry{e}); err != nil {
			return err
		}
		if res.Status.Terminal() {
			out.Result.Status = res.Status
			out.Settled = []string{g.PaymentID}
		}
	}
	return nil
}

// dropInbox clears the results queued for a payment whose attempt was
// refused for good (code), each kept as an applied=0 audit event: a
// gateway's word that it settled a payment the ledger never took is
// evidence to keep.
func dropInbox(ctx context.Context, tx *sqlx.Tx, now time.Time, paymentID, orderID, code string) error {
	queued, err := peekInbox(ctx, tx, paymentID)
	if err != nil || len(queued) == 0 {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM gateway_inbox WHERE payment_id = ?", paymentID); err != nil {
		return fmt.Errorf("clear gateway inbox: %w", err)
	}
	note := "refused: the attempt was refused (" + code + "), so its early gateway result is dropped"
	for _, g := range queued {
		if _, err := tx.ExecContext(ctx, "INSERT INTO payment_events "+eventColumns+" VALUES (?,?,NULL,?,?,?,0,?,?)",
			paymentID, orderID, string(g.Status), string(SourceGateway), g.ref(), note, now); err != nil {
			return fmt.Errorf("record dropped gateway result: %w", err)
		}
	}
	return nil
}

// ApplyGatewayResult settles a payment of order g.OrderID by its gateway's
// result: Settled from PENDING, Unchanged for a repeat, Rejected
// BAD_TRANSITION (kept as an applied=0 event) out of the other terminal
// status, BAD_AMOUNT or DUPLICATE_CONFLICT for an amount that is not the
// payment's, PAYMENT_NOT_FOUND for an unknown id.
func (l *Ledger) ApplyGatewayResult(ctx context.Context, g GatewayResult) (AttemptResult, error) {
	res := Result{PaymentID: g.PaymentID}
	if code, msg := g.Check(); code != "" {
		res.Outcome, res.Code, res.Message = Rejected, code, msg
		return AttemptResult{Result: res}, nil
	}
	return l.settleOrder(ctx, g.OrderID, SourceGateway, g.ref(),
		entry{p: g.payment(), settleOnly: true, wantAmountText: g.Amount, gateway: g.Gateway})
}

// TimeOut fails an attempt of the order with reason TIMEOUT if it is still
// PENDING, and leaves it as it is otherwise: its gateway's result may have
// won the race. The attempt is reported settled either way.
func (l *Ledger) TimeOut(ctx context.Context, orderID, paymentID string) (AttemptResult, error) {
	p := Payment{PaymentID: paymentID, OrderID: orderID, Status: StatusFailed, FailureReason: "TIMEOUT"}
	out, err := l.settleOrder(ctx, orderID, SourceAPI, "timeout", entry{p: p, settleOnly: true, ifPending: true})
	if err != nil {
		return out, err
	}
	out.Settled = []string{paymentID}
	return out, nil
}

// settleOrder decides one settlement of a payment of orderID in its own
// transaction, locking the order first.
func (l *Ledger) settleOrder(ctx context.Context, orderID string, src Source, ref string, e entry) (AttemptResult, error) {
	if err := checkCall(src, ref); err != nil {
		return AttemptResult{}, err
	}
	var out AttemptResult
	var rec tally
	err := l.inTx(ctx, func(tx *sqlx.Tx) error {
		out = AttemptResult{Result: Result{PaymentID: e.p.PaymentID}}
		rec = tally{}
		b, err := l.newBatch(src, ref)
		if err != nil {
			return err
		}
		b.recorded = rec
		if err := b.lockOrders(ctx, tx, []string{orderID}); err != nil {
			return err
		}
		o := b.orders[orderID]
		if o == nil {
			out.Result.Outcome, out.Result.Code = Rejected, CodePaymentNotFound
			out.Result.Message = fmt.Sprintf("payment %s not found (order %s does not exist)", mask.ID(e.p.PaymentID), mask.ID(orderID))
			return nil
		}
		e.res = &out.Result
		if err := b.run(ctx, tx, []entry{e}); err != nil {
			return err
		}
		out.Order = *o
		return nil
	})
	if err != nil {
		return AttemptResult{}, fmt.Errorf("settle payment %s of order %s: %w", e.p.PaymentID, orderID, err)
	}
	l.report(rec)
	if out.Result.Status.Terminal() {
		out.Settled = []string{e.p.PaymentID}
	}
	return out, nil
}

// Refresh reads an order's state and which of its pending attempts are
// settled (or gone) by now, after a change its workflow did not make.
func (l *Ledger) Refresh(ctx context.Context, orderID string, pending []string) (AttemptResult, error) {
	var out AttemptResult
	if len(pending) > 0 {
		q, args, err := sqlx.In("SELECT payment_id, payment_status FROM payments WHERE payment_id IN (?)", pending)
		if err != nil {
			return out, err
		}
		var rows []struct {
			ID     string `db:"payment_id"`
			Status Status `db:"payment_status"`
		}
		if err := l.DB.SelectContext(ctx, &rows, q, args...); err != nil {
			return out, fmt.Errorf("refresh order %s: read payment statuses: %w", orderID, err)
		}
		still := make(map[string]bool, len(rows))
		for _, r := range rows {
			still[r.ID] = r.Status == StatusPending
		}
		for _, id := range pending {
			if !still[id] {
				out.Settled = append(out.Settled, id)
			}
		}
	}
	st, err := l.OrderState(ctx, orderID)
	if err != nil && !errors.Is(err, ErrOrderNotFound) {
		return AttemptResult{}, err
	}
	out.Order = st
	return out, nil
}

// PaymentOrder returns the id of the order a payment belongs to; the error
// wraps ErrPaymentNotFound for an unknown payment.
func (l *Ledger) PaymentOrder(ctx context.Context, paymentID string) (string, error) {
	orderID, _, err := paymentRoute(ctx, l.DB, paymentID, "")
	return orderID, err
}

// paymentRoute returns a payment's order and the gateway it was sent to
// ("" for none).
func paymentRoute(ctx context.Context, q sqlx.QueryerContext, paymentID, lock string) (orderID, gateway string, err error) {
	var row struct {
		OrderID string         `db:"order_id"`
		Gateway sql.NullString `db:"gateway"`
	}
	err = sqlx.GetContext(ctx, q, &row, "SELECT order_id, gateway FROM payments WHERE payment_id = ?"+lock, paymentID)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fmt.Errorf("payment %s: %w", paymentID, ErrPaymentNotFound)
	}
	if err != nil {
		return "", "", fmt.Errorf("find order of payment %s: %w", paymentID, err)
	}
	return row.OrderID, row.Gateway.String, nil
}

// routeTo is the order to apply g to, or ErrWrongGateway (wrapped) when
// the payment was sent to another gateway.
func routeTo(g GatewayResult, orderID, gateway string) (string, error) {
	if gateway != "" && gateway != g.Gateway {
		return "", fmt.Errorf("gateway result for payment %s from gateway %s: %w", g.PaymentID, g.Gateway, ErrWrongGateway)
	}
	return orderID, nil
}

// RouteGatewayResult returns the order of a gateway result's payment, or
// ErrWrongGateway (wrapped) if the payment was sent to another gateway. A
// result for a payment not recorded yet is kept in the inbox (the first
// one of each gateway kept; repeats change nothing) and queued is true:
// the payment's attempt applies it. Queuing also sweeps a few results
// older than InboxRetention. g must pass Check.
func (l *Ledger) RouteGatewayResult(ctx context.Context, g GatewayResult) (orderID string, queued bool, err error) {
	if code, msg := g.Check(); code != "" {
		return "", false, fmt.Errorf("gateway result for payment %s: %s: %s", g.PaymentID, code, msg)
	}
	orderID, gateway, err := paymentRoute(ctx, l.DB, g.PaymentID, "")
	if err == nil {
		orderID, err = routeTo(g, orderID, gateway)
		return orderID, false, err
	}
	if !errors.Is(err, ErrPaymentNotFound) {
		return "", false, err
	}
	if err := l.sweepInbox(ctx); err != nil {
		return "", false, err
	}
	_, err = l.DB.ExecContext(ctx, `INSERT IGNORE INTO gateway_inbox (payment_id, gateway, status, amount_text,
		gateway_ref, failure_reason, received_at) VALUES (?, ?, ?, NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), ?)`,
		g.PaymentID, g.Gateway, string(g.Status), g.Amount, g.GatewayRef, g.payment().FailureReason, l.now().UTC())
	if err != nil {
		return "", false, fmt.Errorf("queue gateway result for payment %s: %w", g.PaymentID, err)
	}
	// A locking read: if an attempt's transaction has written the payment
	// but not committed (so it may have looked at the inbox before our
	// row), this waits for it and finds the payment; see attemptTx.
	orderID, gateway, err = paymentRoute(ctx, l.DB, g.PaymentID, " LOCK IN SHARE MODE")
	if errors.Is(err, ErrPaymentNotFound) {
		return "", true, nil
	}
	if err != nil {
		return "", false, err
	}
	// The attempt committed without seeing the row, and the caller applies
	// this result now (or is refused it): nothing would ever drain it. (A
	// result queued before the attempt's commit was drained by the
	// attempt; one queued by another callback still on its way here is
	// cleared by that callback.)
	if _, err := l.DB.ExecContext(ctx, "DELETE FROM gateway_inbox WHERE payment_id = ? AND gateway = ?", g.PaymentID, g.Gateway); err != nil {
		return "", false, fmt.Errorf("clear gateway inbox: %w", err)
	}
	orderID, err = routeTo(g, orderID, gateway)
	return orderID, false, err
}

// sweepInbox drops a few inbox results older than InboxRetention, oldest
// first: those of attempts that never came, or were refused and may have
// been corrected within the retention period. The rows are found by a
// plain read of the received_at index and deleted by key, so the sweep
// locks only the rows it drops.
func (l *Ledger) sweepInbox(ctx context.Context) error {
	retention := l.InboxRetention
	if retention <= 0 {
		retention = DefaultInboxRetention
	}
	cutoff := l.now().UTC().Add(-retention)
	var ids []string
	if err := l.DB.SelectContext(ctx, &ids, `SELECT payment_id FROM gateway_inbox FORCE INDEX (idx_gateway_inbox_received)
		WHERE received_at < ? ORDER BY received_at LIMIT ?`, cutoff, inboxSweepBatch); err != nil {
		return fmt.Errorf("sweep gateway inbox: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	ids = sortedUnique(ids)
	args := append(anySlice(ids), cutoff)
	if _, err := l.DB.ExecContext(ctx, "DELETE FROM gateway_inbox WHERE payment_id IN ("+placeholders(len(ids))+") AND received_at < ?",
		args...); err != nil {
		return fmt.Errorf("sweep gateway inbox: %w", err)
	}
	return nil
}

// afterInboxPeek, when set (by tests), runs in an attempt's transaction
// right after it looked at the inbox.
var afterInboxPeek func()

// peekInbox returns the gateway results queued for a payment, in the order
// they came.
func peekInbox(ctx context.Context, tx *sqlx.Tx, paymentID string) ([]GatewayResult, error) {
	var rows []struct {
		Gateway       string         `db:"gateway"`
		Status        Status         `db:"status"`
		Amount        sql.NullString `db:"amount_text"`
		GatewayRef    sql.NullString `db:"gateway_ref"`
		FailureReason sql.NullString `db:"failure_reason"`
	}
	err := tx.SelectContext(ctx, &rows, `SELECT gateway, status, amount_text, gateway_ref, failure_reason
		FROM gateway_inbox WHERE payment_id = ? ORDER BY received_at, gateway`, paymentID)
	if err != nil {
		return nil, fmt.Errorf("read gateway inbox: %w", err)
	}
	out := make([]GatewayResult, len(rows))
	for i, r := range rows {
		out[i] = GatewayResult{Gateway: r.Gateway, PaymentID: paymentID, Status: r.Status, Amount: r.Amount.String,
			GatewayRef: r.GatewayRef.String, FailureReason: r.FailureReason.String}
	}
	return out, nil
}
