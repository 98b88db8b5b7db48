// Package gen writes realistic sample import files (SPEC section 5) for
// `starter gen orders|payments`: users try the service with them and the
// import benchmark feeds them to the importer.
//
// Output is deterministic for a seed (same Options, same bytes, on every
// platform: only integer arithmetic and a private PRNG are used) and fast
// (several million rows per second into a buffered writer). A configurable
// share of rows is deliberately bad in exactly one way each, and Write
// reports how many rows of each reject reason it produced, so importer tests
// can compare the rejects they get with what was generated.
//
// Orders and payments generated with the same seed and currency fit
// together: order ids are ORD-%08d numbered 1..Count, payments refer to
// orders 1..Options.Orders, and the amounts of an order's payments split
// OrderAmount of that order (first payment half, second the rest, further
// ones a small extra, i.e. an overpayment). Payments can instead refer to
// the orders an orders file holds (Options.OrderList, from ReadOrders), so
// that every payment has an order its import stored, whatever the orders
// file's bad rows were.
package gen

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/acme/payments/internal/money"
	"github.com/acme/payments/internal/records"
)

// Kinds of file Write produces (Options.Kind).
const (
	KindOrders   = "orders"
	KindPayments = "payments"
)

// Formats Write produces (Options.Format).
const (
	FormatCSV = "csv"
	FormatXML = "xml"
)

// Reject reason codes (SPEC section 5) of the deliberately bad rows, the keys
// of Stats.BadByReason. Orders use MISSING_FIELD, BAD_AMOUNT, BAD_CURRENCY,
// BAD_DATE and DUPLICATE_CONFLICT; payments also BAD_METHOD, BAD_STATUS and
// ORDER_NOT_FOUND.
const (
	ReasonMissingField      = "MISSING_FIELD"
	ReasonBadAmount         = "BAD_AMOUNT"
	ReasonBadCurrency       = "BAD_CURRENCY"
	ReasonBadDate           = "BAD_DATE"
	ReasonBadMethod         = "BAD_METHOD"
	ReasonBadStatus         = "BAD_STATUS"
	ReasonOrderNotFound     = "ORDER_NOT_FOUND"
	ReasonDuplicateConflict = "DUPLICATE_CONFLICT"
)

// LayoutSpace is the second created_at layout of the generated files besides
// time.RFC3339 (always UTC, "Z" suffix); rows mix the two.
const LayoutSpace = "2006-01-02 15:04:05"

// DefaultStartTime is the default Options.StartTime.
var DefaultStartTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Window is how far after Options.StartTime the created_at values spread.
const Window = 30 * 24 * time.Hour

// NotFoundOrderBase is the smallest order number used by ORDER_NOT_FOUND
// payment rows (or Options.Orders+1 when that is larger), so such rows stay
// unmatched by any orders file of fewer than NotFoundOrderBase rows.
const NotFoundOrderBase = 90_000_000

// Columns returns the column names (CSV header, XML child elements) of a
// kind in the order Write emits them, the import columns of package
// records, or nil for an unknown kind.
func Columns(kind string) []string {
	return slices.Clone(records.Columns(records.Kind(kind)))
}

// Options configure Write. The zero value of every field but Kind and Count
// selects its documented default.
type Options struct {
	// Kind is "orders" or "payments".
	Kind string
	// Format is "csv" (default when empty) or "xml".
	Format string
	// Count is the number of data rows to write (>= 0).
	Count int
	// BadRate in [0, 1] is the share of deliberately bad rows: exactly
	// round(Count × BadRate) rows are bad, spread at random over the file,
	// so a user knows before importing how many rejects to expect. Each bad
	// row is bad in exactly one way, picked at random among the kind's
	// reasons (see the Reason constants), and is rejected once.
	BadRate float64
	// Seed selects the data: same Options, same bytes.
	Seed int64
	// Orders (payments only) is the number of distinct orders the payments
	// refer to: payment row i (0-based) belongs to order (i % Orders)+1.
	// Default Count/2, at least 1. Ignored with OrderList.
	Orders int
	// OrderList (payments only), when not empty, is the orders the payments
	// refer to instead: payment row i belongs to OrderList[i % len], takes
	// its currency and splits its amount as above. ReadOrders reads it from
	// an orders file. ORDER_NOT_FOUND rows name ids outside the list.
	OrderList []Order
	// OrderIDPrefix prefixes the 8-digit order numbers; default "ORD-".
	// Payment ids are always "PAY-%09d".
	OrderIDPrefix string
	// Currency of every good row; default "USD". It must be an active ISO
	// 4217 code (money.Lookup). Keep it fixed between the orders and the
	// payments file so payments match their orders.
	Currency string
	// StartTime is the created_at base (default DefaultStartTime); rows
	// spread over the following Window. It is written in UTC.
	StartTime time.Time
}

// Stats describes what Write produced.
type Stats struct {
	// Rows is the number of data rows written.
	Rows int
	// Bad is the number of deliberately bad rows among them.
	Bad int
	// BadByReason counts the bad rows by reason code; reasons with no row
	// are absent. The map is never nil.
	BadByReason map[string]int
}

// reason indices; rDup must stay last in the per-kind lists (see pickReason).
const (
	rMissing = iota
	rAmount
	rCurrency
	rDate
	rMethod
	rStatus
	rOrderNotFound
	rDup
	nReasons
)

var reasonNames = [nReasons]string{
	ReasonMissingField, ReasonBadAmount, ReasonBadCurrency, ReasonBadDate,
	ReasonBadMethod, ReasonBadStatus, ReasonOrderNotFound, ReasonDuplicateConflict,
}

var (
	orderReasons   = []int{rMissing, rAmount, rCurrency, rDate, rDup}
	paymentReasons = []int{rMissing, rAmount, rCurrency, rDate, rMethod, rStatus, rOrderNotFound, rDup}
)

// Write validates o and writes o.Count rows of sample data to w: a header
// (CSV) or the XML declaration and root element first. It buffers
// internally, so w need not be buffered. On a write error it returns the
// error and the Stats of the rows generated so far.
func Write(w io.Writer, o Options) (Stats, error) {
	o, err := normalize(o)
	if err != nil {
		return Stats{BadByReason: map[string]int{}}, err
	}
	g := newGenerator(w, o)
	g.run()
	st := Stats{Rows: g.rows, BadByReason: make(map[string]int)}
	for i, n := range g.bad {
		if n > 0 {
			st.BadByReason[reasonNames[i]] = n
			st.Bad += n
		}
	}
	return st, g.err
}

func normalize(o Options) (Options, error) {
	switch o.Kind {
	case KindOrders, KindPayments:
	case "":
		return o, errors.New("gen: kind is required (orders or payments)")
	default:
		return o, fmt.Errorf("gen: unknown kind %q (want orders or payments)", o.Kind)
	}
	switch o.Format {
	case "":
		o.Format = FormatCSV
	case FormatCSV, FormatXML:
	default:
		return o, fmt.Errorf("gen: unknown format %q (want csv or xml)", o.Format)
	}
	if o.Count < 0 {
		return o, fmt.Errorf("gen: count must be >= 0, got %d", o.Count)
	}
	if math.IsNaN(o.BadRate) || o.BadRate < 0 || o.BadRate > 1 {
		return o, fmt.Errorf("gen: bad rate must be between 0 and 1, got %v", o.BadRate)
	}
	if o.Orders < 0 {
		return o, fmt.Errorf("gen: orders must be >= 0, got %d", o.Orders)
	}
	if o.Orders == 0 {
		o.Orders = max(o.Count/2, 1)
	}
	if len(o.OrderList) > 0 {
		if o.Kind != KindPayments {
			return o, errors.New("gen: an order list is for payments only")
		}
		for i, ord := range o.OrderList {
			if _, ok := money.Lookup(ord.Currency); !ok || ord.ID == "" || ord.Amount <= 0 {
				return o, fmt.Errorf("gen: order list entry %d (%q) needs an id, a positive amount and an ISO 4217 currency", i, ord.ID)
			}
		}
		o.Orders = len(o.OrderList)
	}
	if o.OrderIDPrefix == "" {
		o.OrderIDPrefix = "ORD-"
	}
	if o.Currency == "" {
		o.Currency = "USD"
	}
	if _, ok := money.Lookup(o.Currency); !ok {
		return o, fmt.Errorf("gen: unknown currency %q (want an active ISO 4217 code such as USD)", o.Currency)
	}
	if o.StartTime.IsZero() {
		o.StartTime = DefaultStartTime
	}
	o.StartTime = o.StartTime.UTC()
	if y := o.StartTime.Year(); y < 1000 || y > 9990 {
		return o, fmt.Errorf("gen: start time year %d out of range 1000..9990", y)
	}
	return o, nil
}

// ---- deterministic randomness ----

const golden = 0x9e3779b97f4a7c15

func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// hash derives an independent 64-bit value for (seed, tag, k).
func hash(seed int64, tag uint64, k int) uint64 {
	return mix64(mix64(uint64(seed)^tagKey(tag)) + uint64(k)*golden)
}

// tagKey spreads a small tag over 64 bits (wrapping multiplication).
func tagKey(tag uint64) uint64 { return tag * golden }

const (
	tagStream = iota + 1
	tagAmount
	tagTime
	tagCustomer
	tagExtra
	tagGateway
)

// rng is splitmix64: tiny, fast and stable across Go releases.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += golden
	return mix64(r.s)
}

// intn returns a value in [0, n), n > 0.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.next(), uint64(n))
	return int(hi)
}

func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func pow10(exp int) int64 {
	p := int64(1)
	for range exp {
		p *= 10
	}
	return p
}

// OrderAmount is the amount, in minor units of currency, of order number k
// (the k of "ORD-%08d") in files generated with seed: 5.00 to 2,000.00
// major units, skewed towards small orders. Orders and payments generation
// both use it, so the payments of a seed split their order's amount. It
// returns 0 for an unknown currency.
func OrderAmount(seed int64, k int, currency string) int64 {
	c, ok := money.Lookup(currency)
	if !ok {
		return 0
	}
	return orderAmount(seed, k, pow10(c.Exponent))
}

func orderAmount(seed int64, k int, scale int64) int64 {
	h := hash(seed, tagAmount, k)
	var lo, hi int64 // major units
	switch b := h % 100; {
	case b < 40:
		lo, hi = 5, 50
	case b < 70:
		lo, hi = 50, 200
	case b < 90:
		lo, hi = 200, 800
	default:
		lo, hi = 800, 2000
	}
	span := uint64((hi-lo)*scale + 1)
	v := lo*scale + int64((h>>8)%span)
	if scale >= 100 && (h>>56)%4 == 0 {
		// a quarter of the prices end in .99 (or .x99.. for exponent > 2)
		v = v - v%scale + scale - scale/100
		if v > hi*scale {
			v -= scale
		}
	}
	return v
}

// paymentAmount is the amount of the nth (0-based) payment of an order.
func paymentAmount(seed int64, id int, orderAmt int64, nth int, scale int64) int64 {
	switch nth {
	case 0:
		return max(orderAmt/2, 1)
	case 1:
		return max(orderAmt-orderAmt/2, 1)
	}
	// small extra: 1.00 to 20.00 major units
	return scale + int64(hash(seed, tagExtra, id)%uint64(19*scale+1))
}

const windowSeconds = int64(Window / time.Second)

// orderOffset is the created_at of order k in seconds after StartTime.
func orderOffset(seed int64, k int) int64 {
	return int64(hash(seed, tagTime, k) % uint64(windowSeconds))
}

// ---- value tables ----

var firstNames = []string{
	"james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda",
	"william", "elizabeth", "david", "barbara", "richard", "susan", "joseph", "jessica",
	"thomas", "sarah", "charles", "karen", "priya", "rahul", "ananya", "arjun",
	"wei", "mei", "hiroshi", "yuki", "fatima", "omar", "ahmed", "aisha",
	"carlos", "sofia", "lucas", "maria", "olga", "ivan", "chloe", "noah",
	"emma", "liam", "olivia", "mateo", "amara", "kwame", "ngozi", "lars",
}

var lastNames = []string{
	"smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis",
	"rodriguez", "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "taylor",
	"moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris",
	"sharma", "patel", "singh", "kumar", "wang", "li", "zhang", "chen",
	"tanaka", "sato", "suzuki", "khan", "ali", "hassan", "silva", "santos",
	"oliveira", "ivanov", "petrov", "muller", "schmidt", "okafor", "mensah", "nielsen",
}

// Only reserved example domains (RFC 2606).
var emailDomains = []string{"example.com", "example.org", "example.net"}

var upiHandles = []string{"okaxis", "okhdfcbank", "okicici", "oksbi", "ybl", "paytm", "upi", "apl"}

var netBanks = []string{"HDFC", "ICIC", "SBIN", "UTIB", "KKBK", "BARC", "CHAS", "BOFA"}

var wallets = []string{"paytm", "phonepe", "gpay", "amazonpay", "mobikwik", "paypal"}

const (
	mCard = iota
	mUPI
	mNetBanking
	mWallet
	mBankTransfer
	mCash
	mVoucher
)

var methodNames = []string{"CARD", "UPI", "NETBANKING", "WALLET", "BANK_TRANSFER", "CASH", "VOUCHER"}

// methodByPercent maps a percentile to a method: CARD 40%, UPI 20%,
// NETBANKING/WALLET/BANK_TRANSFER 10% each, CASH/VOUCHER 5% each.
var methodByPercent = func() [100]uint8 {
	var t [100]uint8
	weights := []int{40, 20, 10, 10, 10, 5, 5}
	i := 0
	for m, w := range weights {
		for range w {
			t[i] = uint8(m)
			i++
		}
	}
	return t
}()

var statusNames = []string{"SUCCESS", "PENDING", "FAILED"}

var (
	badAmounts    = []string{"", "-5.00", "1e3", "abc", "0", "1,000.00", "$12.00", "12.5.0"} // "" = too many fraction digits for the currency
	badCurrencies = []string{"XXX", "usd", "US$", "EURO", "ZZZ"}
	badDates      = []string{"2026-13-45", "yesterday", "2026-02-30 12:00:00", "31/01/2026 10:00", "2026-01-15T25:00:00Z"}
	badMethods    = []string{"CHEQUE", "CRYPTO", "BARTER", "IOU"}
	badStatuses   = []string{"DONE", "REFUNDED", "PAID", "CANCELLED"}
)

// ---- generator ----

const flushAt = 64 << 10

type generator struct {
	o        Options
	w        io.Writer
	err      error
	scale    int64
	exp      int
	base     int64 // StartTime, Unix seconds
	rnd      rng
	reasons  []int
	custN    int
	rowElem  string
	cols     []string
	xmlOpen  [][]byte
	xmlClose [][]byte

	out  []byte
	row  []byte // fields of the current row, back to back
	ends [10]int
	nf   int

	rows    int
	badLeft int // bad rows still to write
	bad     [nReasons]int
	cands   []int // ids of earlier good rows not yet duplicated

	listed map[string]bool // ids of OrderList
	idBuf  []byte          // the current payment's order_id
	// the current row's currency, its exponent and 10^exponent
	cur      string
	curExp   int
	curScale int64
}

func newGenerator(w io.Writer, o Options) *generator {
	c, _ := money.Lookup(o.Currency)
	g := &generator{
		o:     o,
		w:     w,
		exp:   c.Exponent,
		scale: pow10(c.Exponent),
		base:  o.StartTime.Unix(),
		rnd:   rng{s: mix64(uint64(o.Seed) ^ tagKey(tagStream))},
		out:   make([]byte, 0, flushAt+4096),
		row:   make([]byte, 0, 512),
		custN: max(o.Count/3, 1),
		// BadRate is in [0, 1] and Count an int, so this cannot overflow.
		badLeft: int(math.Round(float64(o.Count) * o.BadRate)),
		cur:     o.Currency,
	}
	g.curExp, g.curScale = g.exp, g.scale
	if len(o.OrderList) > 0 {
		g.listed = make(map[string]bool, len(o.OrderList))
		for _, ord := range o.OrderList {
			g.listed[ord.ID] = true
		}
	}
	if o.Kind == KindOrders {
		g.reasons, g.cols, g.rowElem = orderReasons, records.OrderColumns, "order"
	} else {
		g.reasons, g.cols, g.rowElem = paymentReasons, records.PaymentColumns, "payment"
	}
	for _, col := range g.cols {
		g.xmlOpen = append(g.xmlOpen, []byte("<"+col+">"))
		g.xmlClose = append(g.xmlClose, []byte("</"+col+">"))
	}
	return g
}

func (g *generator) run() {
	root := g.o.Kind
	if g.o.Format == FormatXML {
		g.out = append(g.out, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<"+root+">\n"...)
	} else {
		for i, col := range g.cols {
			if i > 0 {
				g.out = append(g.out, ',')
			}
			g.out = append(g.out, col...)
		}
		g.out = append(g.out, '\n')
	}
	for r := 0; r < g.o.Count && g.err == nil; r++ {
		g.row, g.nf = g.row[:0], 0
		if g.o.Kind == KindOrders {
			g.orderRow(r)
		} else if len(g.o.OrderList) > 0 {
			g.listedPaymentRow(r)
		} else {
			g.paymentRow(r)
		}
		g.emit()
		g.rows++
		if len(g.out) >= flushAt {
			g.flush()
		}
	}
	if g.err != nil {
		return
	}
	if g.o.Format == FormatXML {
		g.out = append(g.out, "</"+root+">\n"...)
	}
	g.flush()
}

func (g *generator) flush() {
	if len(g.out) == 0 || g.err != nil {
		return
	}
	_, g.err = g.w.Write(g.out)
	g.out = g.out[:0]
}

// pickReason decides whether row r (0-based) is bad and how; -1 means
// good. It is selection sampling (Knuth's algorithm S): row r is bad with
// probability badLeft/(rows left), so exactly the planned number of rows
// is bad, spread at random.
func (g *generator) pickReason(r int) int {
	if g.badLeft == 0 || g.rnd.float()*float64(g.o.Count-r) >= float64(g.badLeft) {
		return -1
	}
	g.badLeft--
	n := len(g.reasons)
	if len(g.cands) == 0 {
		n-- // nothing to duplicate yet: rDup is last, leave it out
	}
	rs := g.reasons[g.rnd.intn(n)]
	g.bad[rs]++
	return rs
}

// takeCandidate removes and returns a random earlier good id, so each good
// row is duplicated at most once (three rows with one id could make the
// importer count one as unchanged instead of conflicting).
func (g *generator) takeCandidate() int {
	i := g.rnd.intn(len(g.cands))
	id := g.cands[i]
	last := len(g.cands) - 1
	g.cands[i] = g.cands[last]
	g.cands = g.cands[:last]
	return id
}

func (g *generator) endField() {
	g.ends[g.nf] = len(g.row)
	g.nf++
}

func (g *generator) field(s string) {
	g.row = append(g.row, s...)
	g.endField()
}

func (g *generator) orderRow(r int) {
	reason := g.pickReason(r)
	id := r + 1
	amount := orderAmount(g.o.Seed, id, g.scale)
	if reason == rDup {
		id = g.takeCandidate()
		amount = orderAmount(g.o.Seed, id, g.scale) + 1 + int64(g.rnd.intn(int(10*g.scale)))
	} else if reason < 0 && g.o.BadRate > 0 {
		g.cands = append(g.cands, id)
	}
	missing := -1
	if reason == rMissing {
		missing = 0 // order_id
		if g.rnd.intn(10) < 3 {
			missing = 1 // order_amount
		}
	}

	// order_id
	if missing != 0 {
		g.row = append(g.row, g.o.OrderIDPrefix...)
		g.row = appendPadded(g.row, id, 8)
	}
	g.endField()
	// order_amount
	g.amountField(amount, reason, missing == 1)
	// currency
	g.currencyField(reason)
	// created_at
	g.dateField(orderOffset(g.o.Seed, id), reason)
	// customer_email, customer_phone
	c := g.rnd.intn(g.custN) + 1
	h := hash(g.o.Seed, tagCustomer, c)
	first := firstNames[h%uint64(len(firstNames))]
	last := lastNames[(h>>8)%uint64(len(lastNames))]
	if (h>>16)%4 == 0 {
		g.row = append(g.row, first[0])
	} else {
		g.row = append(g.row, first...)
		g.row = append(g.row, '.')
	}
	g.row = append(g.row, last...)
	g.row = append(g.row, '+')
	g.row = appendInt(g.row, c)
	g.row = append(g.row, '@')
	g.row = append(g.row, emailDomains[(h>>20)%uint64(len(emailDomains))]...)
	g.endField()
	if (h>>24)%20 != 0 { // 5% of customers left no phone
		g.row = append(g.row, "+1555"...)
		g.row = appendPadded(g.row, int((h>>32)%10_000_000), 7)
	}
	g.endField()
}

func (g *generator) paymentRow(r int) {
	reason := g.pickReason(r)
	id := r + 1
	if reason == rDup {
		id = g.takeCandidate()
	} else if reason < 0 && g.o.BadRate > 0 {
		g.cands = append(g.cands, id)
	}
	k := (id-1)%g.o.Orders + 1
	nth := (id - 1) / g.o.Orders
	amount := paymentAmount(g.o.Seed, id, orderAmount(g.o.Seed, k, g.scale), nth, g.scale)
	if reason == rDup {
		amount += 1 + int64(g.rnd.intn(int(10*g.scale)))
	}
	var created int64
	if reason == rOrderNotFound {
		k = max(NotFoundOrderBase, g.o.Orders+1) + g.rnd.intn(1_000_000)
		created = int64(g.rnd.intn(int(windowSeconds)))
	} else {
		created = paymentOffset(orderOffset(g.o.Seed, k), nth, &g.rnd)
	}
	g.idBuf = appendPadded(append(g.idBuf[:0], g.o.OrderIDPrefix...), k, 8)
	g.paymentFields(id, reason, amount, created, g.idBuf)
}

// listedPaymentRow is payment row r of an Options.OrderList: it belongs to
// the listed order (r % len), in that order's currency.
func (g *generator) listedPaymentRow(r int) {
	reason := g.pickReason(r)
	id := r + 1
	if reason == rDup {
		id = g.takeCandidate()
	} else if reason < 0 && g.o.BadRate > 0 {
		g.cands = append(g.cands, id)
	}
	n := len(g.o.OrderList)
	ord := g.o.OrderList[(id-1)%n]
	nth := (id - 1) / n
	c, _ := money.Lookup(ord.Currency) // checked by normalize
	g.cur, g.curExp, g.curScale = ord.Currency, c.Exponent, pow10(c.Exponent)
	amount := paymentAmount(g.o.Seed, id, ord.Amount, nth, g.curScale)
	if reason == rDup {
		amount += 1 + int64(g.rnd.intn(int(10*g.curScale)))
	}
	g.idBuf = append(g.idBuf[:0], ord.ID...)
	var created int64
	if reason == rOrderNotFound {
		// an id of the prefix's form the list does not hold
		for {
			g.idBuf = appendPadded(append(g.idBuf[:0], g.o.OrderIDPrefix...), max(NotFoundOrderBase, n+1)+g.rnd.intn(1_000_000), 8)
			if !g.listed[string(g.idBuf)] {
				break
			}
		}
		created = int64(g.rnd.intn(int(windowSeconds)))
	} else {
		orderOff := orderOffset(g.o.Seed, (id-1)%n+1)
		if !ord.CreatedAt.IsZero() {
			orderOff = ord.CreatedAt.Unix() - g.base
		}
		created = orderOff + paymentDelay(nth, &g.rnd)
	}
	g.paymentFields(id, reason, amount, created, g.idBuf)
}

// paymentFields writes the fields of payment id (reason as pickReason
// said) of order orderID; created is its created_at in seconds after
// StartTime.
func (g *generator) paymentFields(id, reason int, amount, created int64, orderID []byte) {
	missing := -1
	if reason == rMissing {
		missing = g.rnd.intn(3) // payment_id, order_id, payment_amount
	}

	// payment_id
	if missing != 0 {
		g.row = append(g.row, "PAY-"...)
		g.row = appendPadded(g.row, id, 9)
	}
	g.endField()
	// order_id
	if missing != 1 {
		g.row = append(g.row, orderID...)
	}
	g.endField()
	// payment_amount
	g.amountField(amount, reason, missing == 2)
	// payment_method
	method := int(methodByPercent[g.rnd.intn(100)])
	if reason == rMethod {
		g.field(badMethods[g.rnd.intn(len(badMethods))])
	} else {
		g.field(methodNames[method])
	}
	// payment_status: SUCCESS 85%, PENDING 10%, FAILED 5%
	failed := false
	switch p := g.rnd.intn(100); {
	case reason == rStatus:
		g.field(badStatuses[g.rnd.intn(len(badStatuses))])
	case p < 85:
		g.field(statusNames[0])
	case p < 95:
		g.field(statusNames[1])
	default:
		g.field(statusNames[2])
		failed = true
	}
	// payment_details
	g.detailsField(method)
	// gateway_ref
	if method != mCash && method != mVoucher {
		g.row = append(g.row, "gw_"...)
		g.row = appendHex12(g.row, gatewayRef(g.o.Seed, id))
	}
	g.endField()
	// currency
	g.currencyField(reason)
	// created_at
	g.dateField(created, reason)
	// failure_reason, of failed payments only
	if failed {
		g.field(failureReasons[id%len(failureReasons)])
	} else {
		g.endField()
	}
}

// failureReasons are what gateways say of a declined payment.
var failureReasons = []string{"DECLINED", "INSUFFICIENT_FUNDS", "EXPIRED_CARD", "DO_NOT_HONOR"}

// paymentOffset places the nth payment of an order after the order's
// created_at, staying inside the window.
func paymentOffset(orderOff int64, nth int, r *rng) int64 {
	d := paymentDelay(nth, r)
	if rest := windowSeconds - orderOff; d >= rest {
		d %= rest
	}
	return orderOff + d
}

// paymentDelay is how long after its order the nth payment of an order
// comes, in seconds.
func paymentDelay(nth int, r *rng) int64 {
	switch nth {
	case 0:
		return 60 + int64(r.intn(2*3600)) // within two hours
	case 1:
		return 3600 + int64(r.intn(3*86400)) // within three days
	}
	return 86400 + int64(r.intn(5*86400))
}

// gatewayRef is a 48-bit bijection of the payment id (so refs are unique),
// keyed by the seed.
func gatewayRef(seed int64, id int) uint64 {
	const m = 1<<48 - 1
	x := uint64(id)
	x = (x*0x5851f42d4c957f2d + mix64(uint64(seed)^tagKey(tagGateway))) & m
	x ^= x >> 23
	x = (x * 0x2545f4914f6cdd1d) & m
	x ^= x >> 19
	return x
}

func (g *generator) amountField(amount int64, reason int, missing bool) {
	switch {
	case missing:
	case reason == rAmount:
		if s := badAmounts[g.rnd.intn(len(badAmounts))]; s != "" {
			g.row = append(g.row, s...)
		} else {
			// one fraction digit more than the currency allows ("12.345" USD)
			g.row = append(g.row, "12."...)
			for i := 0; i <= g.curExp; i++ {
				g.row = append(g.row, byte('3'+i%7))
			}
		}
	default:
		g.row = append(g.row, money.MustFormat(amount, g.cur)...)
	}
	g.endField()
}

func (g *generator) currencyField(reason int) {
	if reason == rCurrency {
		g.field(badCurrencies[g.rnd.intn(len(badCurrencies))])
		return
	}
	g.field(g.cur)
}

func (g *generator) dateField(off int64, reason int) {
	layout := g.rnd.intn(2)
	if reason == rDate {
		g.field(badDates[g.rnd.intn(len(badDates))])
		return
	}
	t := time.Unix(g.base+off, 0).UTC()
	y, mo, d := t.Date()
	hh, mm, ss := t.Clock()
	b := appendPadded(g.row, y, 4)
	b = append(b, '-')
	b = appendPadded(b, int(mo), 2)
	b = append(b, '-')
	b = appendPadded(b, d, 2)
	if layout == 0 {
		b = append(b, 'T')
	} else {
		b = append(b, ' ')
	}
	b = appendPadded(b, hh, 2)
	b = append(b, ':')
	b = appendPadded(b, mm, 2)
	b = append(b, ':')
	b = appendPadded(b, ss, 2)
	if layout == 0 {
		b = append(b, 'Z')
	}
	g.row = b
	g.endField()
}

func (g *generator) detailsField(method int) {
	r := &g.rnd
	b := g.row
	switch method {
	case mCard:
		// 16 digits with a valid Luhn check digit, grouped by four
		var d [16]byte
		d[0] = "45"[r.intn(2)]
		if d[0] == '5' {
			d[1] = byte('1' + r.intn(5))
		} else {
			d[1] = byte('0' + r.intn(10))
		}
		v := r.next()
		for i := 2; i < 15; i++ {
			d[i] = byte('0' + v%10)
			v /= 10
		}
		d[15] = luhnDigit(d[:15])
		for i := range 16 {
			if i > 0 && i%4 == 0 {
				b = append(b, ' ')
			}
			b = append(b, d[i])
		}
	case mUPI:
		h := r.next()
		b = append(b, firstNames[h%uint64(len(firstNames))]...)
		if h>>8&1 == 0 {
			b = append(b, '.')
			b = append(b, lastNames[(h>>9)%uint64(len(lastNames))]...)
		} else {
			b = appendInt(b, int((h>>9)%100))
		}
		b = append(b, '@')
		b = append(b, upiHandles[(h>>20)%uint64(len(upiHandles))]...)
	case mNetBanking:
		h := r.next()
		b = append(b, netBanks[h%uint64(len(netBanks))]...)
		b = append(b, '-')
		b = appendPadded(b, int((h>>8)%1_000_000_000_000), 12)
	case mWallet:
		h := r.next()
		b = append(b, wallets[h%uint64(len(wallets))]...)
		b = append(b, ':')
		b = append(b, byte('6'+(h>>8)%4))
		b = appendPadded(b, int((h>>16)%1_000_000_000), 9)
	case mBankTransfer:
		b = appendIBAN(b, r.next())
	case mCash:
		// no details
	case mVoucher:
		// free text that needs CSV quoting (quote and comma)
		h := r.next()
		const alnum = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
		b = append(b, `voucher "GC-`...)
		for range 8 {
			b = append(b, alnum[h&31])
			h >>= 5
		}
		b = append(b, `", single use`...)
	}
	g.row = b
	g.endField()
}

func luhnDigit(d []byte) byte {
	sum := 0
	// the check digit will be at position len(d); double every second digit
	// from the right of the full number, i.e. d[len-1], d[len-3], ...
	for i := len(d) - 1; i >= 0; i -= 2 {
		x := int(d[i]-'0') * 2
		if x > 9 {
			x -= 9
		}
		sum += x
		if i > 0 {
			sum += int(d[i-1] - '0')
		}
	}
	return byte('0' + (10-sum%10)%10)
}

// appendIBAN appends a German-style IBAN with valid check digits, grouped
// by four ("DE89 3704 0044 0532 0130 00").
func appendIBAN(b []byte, h uint64) []byte {
	var bban [18]byte
	for i := range bban {
		bban[i] = byte('0' + h%10)
		h /= 10
		if h == 0 {
			h = mix64(uint64(i) + golden)
		}
	}
	// mod 97 of BBAN + "DE00" (D=13, E=14)
	rem := 0
	for _, c := range bban {
		rem = (rem*10 + int(c-'0')) % 97
	}
	for _, c := range "131400" {
		rem = (rem*10 + int(c-'0')) % 97
	}
	check := 98 - rem
	var s [22]byte
	s[0], s[1] = 'D', 'E'
	s[2], s[3] = byte('0'+check/10), byte('0'+check%10)
	copy(s[4:], bban[:])
	for i, c := range s {
		if i > 0 && i%4 == 0 {
			b = append(b, ' ')
		}
		b = append(b, c)
	}
	return b
}

// ---- row output ----

func (g *generator) emit() {
	start := 0
	if g.o.Format == FormatXML {
		g.out = append(g.out, "  <"...)
		g.out = append(g.out, g.rowElem...)
		g.out = append(g.out, '>')
		for i := 0; i < g.nf; i++ {
			f := g.row[start:g.ends[i]]
			start = g.ends[i]
			if len(f) == 0 {
				continue
			}
			g.out = append(g.out, g.xmlOpen[i]...)
			g.out = appendXMLEscaped(g.out, f)
			g.out = append(g.out, g.xmlClose[i]...)
		}
		g.out = append(g.out, "</"...)
		g.out = append(g.out, g.rowElem...)
		g.out = append(g.out, ">\n"...)
		return
	}
	for i := 0; i < g.nf; i++ {
		f := g.row[start:g.ends[i]]
		start = g.ends[i]
		if i > 0 {
			g.out = append(g.out, ',')
		}
		g.out = appendCSVField(g.out, f)
	}
	g.out = append(g.out, '\n')
}

// appendCSVField quotes like encoding/csv.Writer: when the field holds a
// comma, quote, CR or LF, starts with a space or tab, or is `\.`.
func appendCSVField(b, f []byte) []byte {
	quote := len(f) > 0 && (f[0] == ' ' || f[0] == '\t') || string(f) == `\.`
	if !quote {
		for _, c := range f {
			if c == ',' || c == '"' || c == '\n' || c == '\r' {
				quote = true
				break
			}
		}
	}
	if !quote {
		return append(b, f...)
	}
	b = append(b, '"')
	for _, c := range f {
		if c == '"' {
			b = append(b, '"')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

func appendXMLEscaped(b, f []byte) []byte {
	for _, c := range f {
		switch c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '"':
			b = append(b, "&#34;"...)
		case '\'':
			b = append(b, "&#39;"...)
		case '\r':
			b = append(b, "&#xD;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendPadded appends n >= 0 in decimal, zero-padded to width digits.
func appendPadded(b []byte, n, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for n >= 10 {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	i--
	tmp[i] = byte('0' + n)
	for len(tmp)-i < width {
		b = append(b, '0')
		width--
	}
	return append(b, tmp[i:]...)
}

func appendInt(b []byte, n int) []byte { return appendPadded(b, n, 1) }

func appendHex12(b []byte, x uint64) []byte {
	const hexd = "0123456789abcdef"
	for shift := 44; shift >= 0; shift -= 4 {
		b = append(b, hexd[(x>>uint(shift))&15])
	}
	return b
}
