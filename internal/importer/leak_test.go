package importer_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ledger"
	"github.com/acme/payments/internal/records"
)

// The sentinels of the leak tests: a card number, an email and a phone.
var sentinels = []string{"4000056655665556", "victim.leak@example.com", "+14155550123"}

// countLeaks counts the rows of MySQL column table.col (of one import) that
// hold a sentinel, or a recognisable part of one.
func countLeaks(t *testing.T, im *importer.Importer, table, col, importID string) int {
	t.Helper()
	n := 0
	for _, s := range append(sentinels, "0566", "victim.leak", "4155550123") {
		var c int
		if err := im.DB.Get(&c, "SELECT COUNT(*) FROM "+table+" WHERE import_id = ? AND INSTR("+col+", ?) > 0", importID, s); err != nil {
			t.Fatal(err)
		}
		if c > 0 {
			t.Errorf("%s.%s of import %s: %d rows hold %q", table, col, importID, c, s)
		}
		n += c
	}
	return n
}

// TestStoredRejectsAndErrorsHoldNoSentinel imports files whose bad rows and
// bad headers carry a card number, an email and a phone, and checks what
// MySQL keeps of them: import_rejects.message and import_jobs.error name
// the field and the rule and hold none of the values (SPEC section 4). The
// orders file's bad rows sit in its first KiB, NUL and invalid UTF-8
// included: they are rejects, and its good rows are imported.
func TestStoredRejectsAndErrorsHoldNoSentinel(t *testing.T) {
	ctx := context.Background()
	im := newImporter(t)

	ordersFile := []byte("order_id,order_amount,currency,created_at,customer_email,customer_phone\n" +
		"GOOD1,1.00,USD,,good@example.com,\n" + // line 2
		"4000 0566 5566 5556,1.00,USD,,,\n" + // 3: id with spaces
		"BAD2,4000056655665556.123,USD,,,\n" + // 4: amount
		"BAD3,1.00,victim.leak@example.com,,,\n" + // 5: currency
		"BAD4,1.00,USD,+14155550123,,\n" + // 6: date
		"BAD5,1.00,USD,,victim.leak@example.com\x00,\n" + // 7: NUL
		"BAD6,1.00,USD,,\xffvictim.leak@example.com,+14155550123\n" + // 8: invalid UTF-8
		"BAD7,1.00,USD,,,+14155550123\x01\n" + // 9: phone
		"4000056655665556,1.00,USD,,,\n" + // 10: a valid (if odd) id
		"4000056655665556,2.00,USD,,,\n" + // 11: the same id, different content
		"GOOD2,2.00,USD,,,\n") // 12
	p := plan(t, im, "leak-orders", ordersFile, 100)
	res := run(t, im, "leak-orders", ordersFile, p, p.Chunks[0])
	if res.RowsWritten != 3 || res.RowsRejected != 8 {
		t.Errorf("orders: %+v, want 3 written and 8 rejected", res)
	}
	var good int
	if err := im.DB.Get(&good, "SELECT COUNT(*) FROM orders WHERE order_id IN ('GOOD1', 'GOOD2')"); err != nil || good != 2 {
		t.Errorf("good orders imported: %d, %v", good, err)
	}
	wantOrders := map[int64]struct{ code, rule string }{
		3:  {ledger.CodeMalformed, "order_id holds white space or control characters"},
		4:  {ledger.CodeBadAmount, "order_amount is not a valid amount: USD allows at most 2 fraction digits"},
		5:  {ledger.CodeBadCurrency, "currency is not an active ISO 4217 code (got a 23-character value)"},
		6:  {ledger.CodeBadDate, "created_at is not RFC 3339 or YYYY-MM-DD HH:MM:SS (got a 12-character value)"},
		7:  {ledger.CodeMalformed, "record holds a NUL character"},
		8:  {ledger.CodeMalformed, "record is not valid UTF-8"},
		9:  {ledger.CodeMalformed, "customer_phone must be at most"},
		11: {ledger.CodeDuplicateConflict, "order_id a 16-character value already exists with different content"},
	}
	checkRejects(t, im, "leak-orders", wantOrders)

	paymentsFile := []byte("payment_id,order_id,payment_amount,payment_method,payment_status,payment_details\n" +
		"P1,GOOD1,1.00,4000 0566 5566 5556,,\n" + // 2: card number as the method
		"P2,GOOD1,1.00,victim.leak@example.com,,\n" + // 3
		"P3,GOOD1,1.00,CARD,+14155550123,4000056655665556\n" + // 4: phone as the status
		"P4,GOOD1,+14155550123,CARD,,\n" + // 5: phone as the amount
		"P5,GOOD1,1.00,CARD,SUCCESS,4000056655665556\n") // 6: fine
	p = plan(t, im, "leak-payments", paymentsFile, 100)
	res = run(t, im, "leak-payments", paymentsFile, p, p.Chunks[0])
	if res.RowsWritten != 1 || res.RowsRejected != 4 {
		t.Errorf("payments: %+v, want 1 written and 4 rejected", res)
	}
	checkRejects(t, im, "leak-payments", map[int64]struct{ code, rule string }{
		2: {ledger.CodeBadMethod, "payment_method is not one of CARD, UPI, NETBANKING, WALLET, BANK_TRANSFER, CASH, VOUCHER (got a 19-character value)"},
		3: {ledger.CodeBadMethod, "payment_method is not one of CARD"},
		4: {ledger.CodeBadStatus, "payment_status is not PENDING, SUCCESS or FAILED (got a 12-character value)"},
		5: {ledger.CodeBadAmount, "payment_amount is not a valid amount: sign '+' not allowed"},
	})

	// Files that fail as a whole: the error the import workflow stores
	// (the planning activity's message) names the cell, not its value.
	for id, file := range map[string]string{
		// No header: the first data row is read as one.
		"leak-noheader":  "ORD-X1,42.00,USD,2024-01-01,victim.leak@example.com,+14155550123\nORD-X2,1,USD,,,\n",
		"leak-badcolumn": "order_id,order_amount,victim.leak@example.com,4000056655665556\nA,1,x,y\n",
		"leak-xml":       "<orders><order><order_id>A</order_id></x4000056655665556></order></orders>",
	} {
		if _, _, err := importer.CreateJob(ctx, im.DB, importer.Job{ImportID: id, WorkflowID: "import/" + id, BlobKey: "k", ContentSHA256: id, MaxRejects: 100}); err != nil {
			t.Fatal(err)
		}
		_, err := records.PlanChunks(bytes.NewReader([]byte(file)), "", 100, records.Limits{})
		if err == nil {
			t.Fatalf("%s: planned", id)
		}
		if err := importer.Finish(ctx, im.DB, id, importer.StateFailed, err.Error()); err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := im.DB.Get(&stored, "SELECT error FROM import_jobs WHERE import_id = ?", id); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stored, "column") && !strings.Contains(stored, "element") {
			t.Errorf("%s: error %q names no column or element", id, stored)
		}
		countLeaks(t, im, "import_jobs", "error", id)
	}
}

// checkRejects compares an import's stored rejects with want (by line) and
// checks that no message holds a sentinel.
func checkRejects(t *testing.T, im *importer.Importer, importID string, want map[int64]struct{ code, rule string }) {
	t.Helper()
	var got []struct {
		Line    int64  `db:"line_no"`
		Code    string `db:"code"`
		Message string `db:"message"`
	}
	if err := im.DB.Select(&got, "SELECT line_no, code, message FROM import_rejects WHERE import_id = ? ORDER BY record_no", importID); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d rejects, want %d: %+v", importID, len(got), len(want), got)
	}
	for _, r := range got {
		w, ok := want[r.Line]
		if !ok || r.Code != w.code || !strings.Contains(r.Message, w.rule) {
			t.Errorf("%s line %d: %s %q, want %s %q", importID, r.Line, r.Code, r.Message, w.code, w.rule)
		}
	}
	countLeaks(t, im, "import_rejects", "message", importID)
}
