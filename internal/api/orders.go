package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/metrics"
	"github.com/acme/payments/internal/money"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/webhook"
)

// maxJSONBody bounds API request bodies other than uploads.
const maxJSONBody = 64 << 10

// decodeJSON reads one JSON object strictly into v: a body over
// maxJSONBody is 413, one that is not valid UTF-8 400 (encoding/json
// would silently replace the bad bytes with U+FFFD).
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, ok := readBody(w, r, maxJSONBody)
	if !ok {
		return false
	}
	if !utf8.Valid(body) {
		WriteError(w, http.StatusBadRequest, "bad_request", "request body is not valid UTF-8")
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", "request body: "+jsonProblem(err))
		return false
	}
	if dec.More() {
		WriteError(w, http.StatusBadRequest, "bad_request", "request body: more than one JSON value")
		return false
	}
	return true
}

// jsonProblem describes a JSON error without echoing the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return "malformed JSON"
	case errors.As(err, &typ):
		return "field " + typ.Field + " has the wrong type"
	case errors.Is(err, io.EOF):
		return "empty"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "invalid JSON"
}

type createOrderRequest struct {
	OrderID       string `json:"order_id"`
	OrderAmount   string `json:"order_amount"`
	Currency      string `json:"currency"`
	CustomerEmail string `json:"customer_email"`
	CustomerPhone string `json:"customer_phone"`
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request) {
	var req createOrderRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	cur := req.Currency
	if cur == "" {
		cur = orders.DefaultCurrency
	}
	if req.OrderAmount == "" {
		WriteError(w, http.StatusBadRequest, "bad_request", "order_amount is required")
		return
	}
	amount, err := money.Parse(req.OrderAmount, cur)
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", "order_amount: "+err.Error())
		return
	}
	created, err := s.Orders.Create(r.Context(), orders.NewOrder{OrderID: req.OrderID, Amount: amount, Currency: cur,
		CustomerEmail: req.CustomerEmail, CustomerPhone: req.CustomerPhone})
	switch {
	case errors.Is(err, orders.ErrInvalid):
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	case errors.Is(err, orders.ErrConflict):
		WriteError(w, http.StatusConflict, "conflict", "order "+req.OrderID+" already exists with different content")
		return
	case err != nil:
		s.internalError(w, "create order", err)
		return
	}
	o, err := s.Orders.Get(r.Context(), req.OrderID)
	if err != nil {
		s.internalError(w, "read order", err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	WriteJSON(w, status, o.JSON(auth.ScopesFrom(r.Context()).Has(auth.PII)))
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "order")
	if !ok {
		return
	}
	o, err := s.Orders.Get(r.Context(), id)
	if errors.Is(err, orders.ErrNotFound) {
		WriteError(w, http.StatusNotFound, "not_found", "no order "+quote(r.PathValue("id")))
		return
	}
	if err != nil {
		s.internalError(w, "read order", err)
		return
	}
	WriteJSON(w, http.StatusOK, o.JSON(auth.ScopesFrom(r.Context()).Has(auth.PII)))
}

// findOrders answers GET /orders?customer_email=: the customer's orders
// (without payments) by the blind index, oldest first, a page at a time.
func (s *Server) findOrders(w http.ResponseWriter, r *http.Request) {
	email := r.URL.Query().Get("customer_email")
	if email == "" {
		WriteError(w, http.StatusBadRequest, "bad_request", "query parameter \"customer_email\" is required")
		return
	}
	limit, cursor, ok := page(w, r)
	if !ok {
		return
	}
	var after *orders.PageKey
	if cursor != nil {
		after = &orders.PageKey{CreatedAt: cursor.CreatedAt, OrderID: cursor.ID}
	}
	found, next, err := s.Orders.FindByEmailPage(r.Context(), email, limit, after)
	if errors.Is(err, orders.ErrInvalid) {
		// Never echo the value: it is customer data.
		WriteError(w, http.StatusBadRequest, "bad_request", "query parameter \"customer_email\" is not an email address")
		return
	}
	if err != nil {
		s.internalError(w, "find orders", err)
		return
	}
	pii := auth.ScopesFrom(r.Context()).Has(auth.PII)
	out := make([]orders.OrderJSON, len(found))
	for i, o := range found {
		out[i] = o.JSON(pii)
	}
	var nc *pageCursor
	if next != nil {
		nc = &pageCursor{CreatedAt: next.CreatedAt, ID: next.OrderID}
	}
	writePage(w, "orders", out, nc)
}

// paymentRequest is POST /orders/{id}/payments' body. Its canonical field
// names are the response's (payment_amount, payment_method,
// payment_details); the older amount, method and details are still
// accepted (deprecated), and both names with different values are a 400.
type paymentRequest struct {
	PaymentID      string `json:"payment_id"`
	PaymentAmount  string `json:"payment_amount"`
	Currency       string `json:"currency"`
	PaymentMethod  string `json:"payment_method"`
	PaymentDetails string `json:"payment_details"`
	// Gateway is the gateway the attempt is sent to; only its callbacks
	// may settle it (see attemptGateway for the default).
	Gateway string `json:"gateway"`
	// Deprecated names.
	Amount  string `json:"amount"`
	Method  string `json:"method"`
	Details string `json:"details"`
}

// canonical folds the deprecated names into the canonical ones.
func (p *paymentRequest) canonical() error {
	for _, f := range []struct {
		name, old string
		dst       *string
		val       string
	}{
		{"payment_amount", "amount", &p.PaymentAmount, p.Amount},
		{"payment_method", "method", &p.PaymentMethod, p.Method},
		{"payment_details", "details", &p.PaymentDetails, p.Details},
	} {
		switch {
		case f.val == "":
		case *f.dst == "":
			*f.dst = f.val
		case *f.dst != f.val:
			return errors.New(f.name + " and its deprecated name " + f.old + " disagree; send " + f.name + " only")
		}
	}
	return nil
}

// rejection is how the API answers a ledger's reject code.
type rejection struct {
	status int
	code   string
}

// rejections maps the ledger's reject codes to API answers; a code not
// listed is a 400 bad_request.
var rejections = map[string]rejection{
	ledger.CodeOrderNotFound:     {http.StatusNotFound, "not_found"},
	ledger.CodePaymentNotFound:   {http.StatusNotFound, "not_found"},
	ledger.CodeOrderCompleted:    {http.StatusConflict, "order_completed"},
	ledger.CodeDuplicateConflict: {http.StatusConflict, "duplicate_conflict"},
	ledger.CodeCurrencyMismatch:  {http.StatusConflict, "currency_mismatch"},
	ledger.CodeBadTransition:     {http.StatusConflict, "bad_transition"},
	ledger.CodeMissingField:      {http.StatusBadRequest, "missing_field"},
	ledger.CodeMalformed:         {http.StatusBadRequest, "malformed"},
	ledger.CodeBadAmount:         {http.StatusBadRequest, "bad_amount"},
	ledger.CodeBadCurrency:       {http.StatusBadRequest, "bad_currency"},
	ledger.CodeBadMethod:         {http.StatusBadRequest, "bad_method"},
	ledger.CodeBadStatus:         {http.StatusBadRequest, "bad_status"},
	ledger.CodeAmountOverflow:    {http.StatusUnprocessableEntity, "amount_overflow"},
	ledger.CodeWrongGateway:      {http.StatusConflict, "wrong_gateway"},
}

func writeRejection(w http.ResponseWriter, code, message string) {
	rj, ok := rejections[code]
	if !ok {
		rj = rejection{http.StatusBadRequest, "bad_request"}
	}
	WriteError(w, rj.status, rj.code, message)
}

// createPayment records a payment attempt through the ledger and hands it
// to the order's payment workflow: 201 PENDING, 200 for the same attempt
// again, 409 on a COMPLETED order or another attempt with the same
// payment_id, 404 for an unknown order.
func (s *Server) createPayment(w http.ResponseWriter, r *http.Request) {
	orderID, ok := pathID(w, r, "order")
	if !ok {
		return
	}
	var req paymentRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	if err := req.canonical(); err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if req.PaymentID == "" || req.PaymentAmount == "" || req.PaymentMethod == "" {
		WriteError(w, http.StatusBadRequest, "bad_request", "payment_id, payment_amount and payment_method are required")
		return
	}
	gateway, problem := s.attemptGateway(req.Gateway)
	if problem != "" {
		WriteError(w, http.StatusBadRequest, "bad_request", problem)
		return
	}
	out, err := s.Lifecycle.Attempt(r.Context(), ledger.Attempt{PaymentID: req.PaymentID, OrderID: orderID,
		Amount: req.PaymentAmount, Currency: req.Currency, Method: req.PaymentMethod, Details: req.PaymentDetails,
		Gateway: gateway})
	if err != nil {
		s.internalError(w, "record payment", err)
		return
	}
	status := http.StatusCreated
	switch out.Result.Outcome {
	case ledger.Inserted:
	case ledger.Unchanged:
		status = http.StatusOK
	default:
		writeRejection(w, out.Result.Code, out.Result.Message)
		return
	}
	p, err := s.Orders.Payment(r.Context(), req.PaymentID)
	if err != nil {
		s.internalError(w, "read payment "+req.PaymentID+" after it was recorded", err)
		return
	}
	WriteJSON(w, status, p.JSON(auth.ScopesFrom(r.Context()).Has(auth.PII)))
}

// attemptGateway is the gateway an attempt asking for name is sent to, or
// a problem for a 400: a configured gateway (one of WebhookSecrets), by
// default the only one (devpay under `starter dev`). With none configured
// no callback can come, and the attempt names none.
func (s *Server) attemptGateway(name string) (gateway, problem string) {
	if name != "" {
		if _, ok := s.WebhookSecrets[name]; !ok {
			return "", "gateway " + quote(name) + " is not a configured gateway"
		}
		return name, ""
	}
	switch len(s.WebhookSecrets) {
	case 0:
		return "", ""
	case 1:
		for gw := range s.WebhookSecrets {
			return gw, ""
		}
	}
	return "", "gateway is required: more than one gateway is configured"
}

// gatewayCallback verifies a gateway's signature before anything else,
// then hands the result to the payment's order workflow. A result for a
// payment not seen yet is kept and applied when the attempt arrives.
// Every callback is counted by its outcome (payments_gateway_callbacks_total).
func (s *Server) gatewayCallback(w http.ResponseWriter, r *http.Request) {
	gateway := r.PathValue("gateway")
	secret, known := s.WebhookSecrets[gateway]
	label := gateway
	if !known {
		// The path is the caller's: only configured names are labels.
		label = metrics.UnknownGateway
	}
	count := func(outcome string) { s.Metrics.GatewayCallback(label, outcome) }
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhook.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			count(metrics.CallbackTooLarge)
		} else {
			count(metrics.CallbackInvalid)
		}
		writeBodyError(w, err, webhook.MaxBodyBytes)
		return
	}
	if !known {
		count(metrics.CallbackUnknownGateway)
		WriteError(w, http.StatusUnauthorized, "unauthorized", "unknown gateway or bad signature")
		return
	}
	if err := webhook.Verify(secret, r.Header.Get("X-Signature"), body, time.Now()); err != nil {
		switch {
		case errors.Is(err, webhook.ErrMissingSignature):
			count(metrics.CallbackMissingSignature)
		case errors.Is(err, webhook.ErrStale):
			count(metrics.CallbackStaleSignature)
		default:
			count(metrics.CallbackBadSignature)
		}
		s.Logger.Warn("gateway callback refused", "gateway", gateway, "reason", err.Error())
		WriteError(w, http.StatusUnauthorized, "unauthorized", "missing, bad or stale signature")
		return
	}
	res, err := webhook.ParseResult(body)
	if err != nil {
		count(metrics.CallbackInvalid)
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	g := ledger.GatewayResult{Gateway: gateway, PaymentID: res.PaymentID, Status: ledger.Status(res.Status),
		Amount: res.Amount, GatewayRef: res.GatewayRef, FailureReason: res.FailureReason}
	if code, msg := g.Check(); code != "" {
		count(metrics.CallbackRejected)
		writeRejection(w, code, msg)
		return
	}
	out, queued, err := s.Lifecycle.GatewayResult(r.Context(), g)
	if errors.Is(err, ledger.ErrWrongGateway) || (err == nil && out.Code == ledger.CodeWrongGateway) {
		// A verified gateway reaching for another gateway's payment:
		// refused, with nothing recorded but this line (ids only).
		count(metrics.CallbackRejected)
		s.Logger.Warn("gateway callback refused", "gateway", gateway, "payment_id", res.PaymentID,
			"reason", "the payment was sent to another gateway")
		writeRejection(w, ledger.CodeWrongGateway, "payment "+quote(res.PaymentID)+" was not sent to gateway "+quote(gateway))
		return
	}
	if err != nil {
		count(metrics.CallbackError)
		s.internalError(w, "apply gateway result", err)
		return
	}
	if queued {
		count(metrics.CallbackQueued)
		WriteJSON(w, http.StatusAccepted, callbackReply{Status: CallbackQueued, PaymentID: res.PaymentID})
		return
	}
	if out.Code == ledger.CodeBadAmount || out.Code == ledger.CodeAmountOverflow {
		// Not an amount of the payment's currency, or one the order's
		// paid amount cannot take: the gateway sent something wrong, not a
		// contradiction to keep.
		count(metrics.CallbackRejected)
		writeRejection(w, out.Code, out.Message)
		return
	}
	reply := callbackReply{PaymentID: res.PaymentID, PaymentStatus: string(out.Status)}
	switch out.Outcome {
	case ledger.Settled:
		count(metrics.CallbackAccepted)
		reply.Status = CallbackAccepted
	case ledger.Unchanged:
		count(metrics.CallbackDuplicate)
		reply.Status = CallbackDuplicate
	default:
		count(metrics.CallbackConflict)
		reply.Status, reply.Code, reply.Message = CallbackConflict, out.Code, out.Message
	}
	// Repeats and contradictions are answered 200 too: the gateway must
	// stop retrying; a contradiction is kept as an audit event.
	WriteJSON(w, http.StatusOK, reply)
}

// What POST /webhooks/{gateway} answers a callback it took: 200 accepted
// (applied), duplicate (already applied) or conflict (contradicts the
// payment's terminal status; kept as an audit event), or 202 queued (the
// payment is not known yet; applied when its attempt arrives). Every other
// answer is the standard error shape.
const (
	CallbackAccepted  = "accepted"
	CallbackDuplicate = "duplicate"
	CallbackConflict  = "conflict"
	CallbackQueued    = "queued"
)

// callbackReply is the one shape of a taken callback's answer.
type callbackReply struct {
	Status    string `json:"status"`
	PaymentID string `json:"payment_id"`
	// PaymentStatus is the payment's status after the callback; absent
	// when queued.
	PaymentStatus string `json:"payment_status,omitempty"`
	// Code and Message say why a conflict changed nothing.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
