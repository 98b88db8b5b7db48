package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/acme/payments/activities"
	"github.com/acme/payments/internal/auth"
	"github.com/acme/payments/internal/ident"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/money"
	"github.com/acme/payments/internal/orders"
	"github.com/acme/payments/internal/webhook"
)

// maxJSONBody bounds API request bodies other than uploads.
const maxJSONBody = 64 << 10

// decodeJSON reads one JSON object strictly into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
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
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &syn):
		return "malformed JSON"
	case errors.As(err, &typ):
		return "field " + typ.Field + " has the wrong type"
	case errors.As(err, &tooBig):
		return "larger than 64 KiB"
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
	o, err := s.Orders.Get(r.Context(), r.PathValue("id"))
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

func (s *Server) findOrders(w http.ResponseWriter, r *http.Request) {
	email := r.URL.Query().Get("customer_email")
	if email == "" {
		WriteError(w, http.StatusBadRequest, "bad_request", "customer_email is required")
		return
	}
	found, err := s.Orders.FindByEmail(r.Context(), email)
	if err != nil {
		s.internalError(w, "find orders", err)
		return
	}
	pii := auth.ScopesFrom(r.Context()).Has(auth.PII)
	out := make([]orders.OrderJSON, len(found))
	for i, o := range found {
		out[i] = o.JSON(pii)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"orders": out})
}

type paymentRequest struct {
	PaymentID string `json:"payment_id"`
	Amount    string `json:"amount"`
	Currency  string `json:"currency"`
	Method    string `json:"method"`
	Details   string `json:"details"`
}

// createPayment records a payment attempt through the order's payment
// workflow: 201 PENDING, 200 for the same attempt again, 409 on a COMPLETED
// order or another attempt with the same payment_id.
func (s *Server) createPayment(w http.ResponseWriter, r *http.Request) {
	orderID := r.PathValue("id")
	var req paymentRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	st, err := s.Ledger.OrderState(r.Context(), orderID)
	if errors.Is(err, ledger.ErrOrderNotFound) {
		WriteError(w, http.StatusNotFound, "not_found", "no order "+quote(orderID))
		return
	}
	if err != nil {
		s.internalError(w, "read order", err)
		return
	}
	cur := req.Currency
	if cur == "" {
		cur = st.Currency
	}
	if req.PaymentID == "" || req.Amount == "" || req.Method == "" {
		WriteError(w, http.StatusBadRequest, "bad_request", "payment_id, amount and method are required")
		return
	}
	// The id rule of files and orders, ahead of the ledger's own looser
	// check, so an id a file would refuse is refused here too.
	if msg := ident.Check(req.PaymentID); msg != "" {
		WriteError(w, http.StatusBadRequest, "bad_request", "payment_id: "+msg)
		return
	}
	amount, err := money.Parse(req.Amount, cur)
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", "amount: "+err.Error())
		return
	}
	res, err := s.Lifecycle.Attempt(r.Context(), orderID, ledger.Payment{
		PaymentID: req.PaymentID, Amount: amount, Currency: cur, Method: req.Method, Details: req.Details,
	})
	if err != nil {
		s.internalError(w, "record payment", err)
		return
	}
	status := http.StatusCreated
	switch res.Outcome {
	case ledger.Inserted:
	case ledger.Unchanged:
		status = http.StatusOK
	default:
		switch res.Code {
		case activities.CodeOrderCompleted, ledger.CodeDuplicateConflict, ledger.CodeCurrencyMismatch, ledger.CodeBadTransition:
			WriteError(w, http.StatusConflict, strings.ToLower(res.Code), res.Message)
		case ledger.CodeOrderNotFound:
			WriteError(w, http.StatusNotFound, "not_found", res.Message)
		default:
			WriteError(w, http.StatusBadRequest, strings.ToLower(res.Code), res.Message)
		}
		return
	}
	s.writePayment(w, r, req.PaymentID, status)
}

func (s *Server) writePayment(w http.ResponseWriter, r *http.Request, paymentID string, status int) {
	p, err := s.Orders.Payment(r.Context(), paymentID)
	if err != nil {
		s.internalError(w, "read payment "+paymentID+" after it was recorded", err)
		return
	}
	WriteJSON(w, status, p.JSON(auth.ScopesFrom(r.Context()).Has(auth.PII)))
}

// gatewayCallback verifies a gateway's signature before anything else,
// then hands the result to the payment's order workflow. A result for a
// payment not seen yet is kept and applied when the attempt arrives.
func (s *Server) gatewayCallback(w http.ResponseWriter, r *http.Request) {
	gateway := r.PathValue("gateway")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, webhook.MaxBodyBytes))
	if err != nil {
		WriteError(w, http.StatusRequestEntityTooLarge, "too_large", "callback body too large")
		return
	}
	secret, ok := s.WebhookSecrets[gateway]
	if !ok {
		WriteError(w, http.StatusUnauthorized, "unauthorized", "unknown gateway or bad signature")
		return
	}
	if err := webhook.Verify(secret, r.Header.Get("X-Signature"), body, time.Now()); err != nil {
		s.Logger.Warn("gateway callback refused", "gateway", gateway, "reason", err.Error())
		WriteError(w, http.StatusUnauthorized, "unauthorized", "missing, bad or stale signature")
		return
	}
	res, err := webhook.ParseResult(body)
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	orderID, err := s.Orders.PaymentOrder(r.Context(), res.PaymentID)
	if errors.Is(err, orders.ErrNotFound) {
		orderID, err = s.queueEarlyResult(r, gateway, res)
		if err != nil {
			s.internalError(w, "queue gateway result", err)
			return
		}
		if orderID == "" {
			WriteJSON(w, http.StatusAccepted, map[string]string{"payment_id": res.PaymentID, "status": "QUEUED"})
			return
		}
	} else if err != nil {
		s.internalError(w, "read payment", err)
		return
	}
	st, err := s.Ledger.OrderState(r.Context(), orderID)
	if err != nil {
		s.internalError(w, "read order", err)
		return
	}
	settlement := ledger.Settlement{PaymentID: res.PaymentID, Status: ledger.Status(res.Status),
		GatewayRef: res.GatewayRef, FailureReason: res.FailureReason}
	if res.Amount != "" {
		if settlement.Amount, err = money.Parse(res.Amount, st.Currency); err != nil {
			WriteError(w, http.StatusBadRequest, "bad_request", "amount: "+err.Error())
			return
		}
	}
	out, err := s.Lifecycle.GatewayResult(r.Context(), orderID, gateway, settlement)
	if err != nil {
		s.internalError(w, "apply gateway result", err)
		return
	}
	// Repeats and contradictions are answered 200 too: the gateway must
	// stop retrying; a contradiction is kept as an audit event.
	WriteJSON(w, http.StatusOK, map[string]string{"payment_id": res.PaymentID, "outcome": out.Outcome.String(),
		"payment_status": string(out.Status), "code": out.Code})
}

// queueEarlyResult keeps a result whose attempt has not arrived. If the
// attempt arrived meanwhile it returns its order so the result is applied
// now instead.
func (s *Server) queueEarlyResult(r *http.Request, gateway string, res webhook.Result) (string, error) {
	_, err := s.DB.ExecContext(r.Context(), `INSERT IGNORE INTO gateway_inbox (payment_id, gateway, status, amount_text,
		gateway_ref, failure_reason, received_at) VALUES (?, ?, ?, NULLIF(?, ''), NULLIF(?, ''), NULLIF(?, ''), ?)`,
		res.PaymentID, gateway, res.Status, res.Amount, res.GatewayRef, res.FailureReason, time.Now().UTC())
	if err != nil {
		return "", err
	}
	orderID, err := s.Orders.PaymentOrder(r.Context(), res.PaymentID)
	if errors.Is(err, orders.ErrNotFound) {
		return "", nil
	}
	return orderID, err
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
