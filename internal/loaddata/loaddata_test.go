package loaddata_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/acme/payments/internal/dbtest"
	"github.com/acme/payments/internal/loaddata"
)

// Every byte value survives the trip through LOAD DATA, NULL stays NULL,
// and a duplicate key is skipped with a warning rather than failing.
func TestLoadRoundTripsBinaryAndReportsSkippedRows(t *testing.T) {
	db := dbtest.New(t)
	if _, err := db.Exec(`CREATE TABLE t (id INT PRIMARY KEY, b VARBINARY(600) NULL)`); err != nil {
		t.Fatal(err)
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	tricky := []byte("\\N\t\n\r\x00\\\\ end")
	var buf bytes.Buffer
	rows := [][]byte{all, tricky, nil, all}
	ids := []string{"1", "2", "3", "1"} // the last repeats a key
	for i, r := range rows {
		loaddata.Field(&buf, []byte(ids[i]), '\t')
		loaddata.NullableField(&buf, r, r == nil, '\n')
	}
	tx, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	n, warnings, err := loaddata.Load(context.Background(), tx, buf.Bytes(), "t", "(id, b)")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n != 3 || warnings != 1 {
		t.Fatalf("stored %d rows with %d warnings, want 3 and 1", n, warnings)
	}
	var got []byte
	for id, want := range map[int][]byte{1: all, 2: tricky, 3: nil} {
		if err := db.Get(&got, "SELECT b FROM t WHERE id = ?", id); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || (want == nil) != (got == nil) {
			t.Fatalf("row %d: got %q, want %q", id, got, want)
		}
	}
}

func TestAppendDateTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(1970, 12, 31, 23, 59, 59, 123456000, time.UTC),
		time.Date(9999, 7, 9, 0, 0, 0, 1000, time.UTC),
		time.Date(2024, 2, 29, 10, 20, 30, 999999999, time.UTC),
	} {
		want := tm.Format(time.DateTime)
		if us := tm.Nanosecond() / 1000; us != 0 {
			want = tm.Truncate(time.Microsecond).Format(loaddata.DateTime)
		}
		if got := string(loaddata.AppendDateTime([]byte("x"), tm)); got != "x"+want {
			t.Errorf("AppendDateTime(%v) = %q, want %q", tm, got, "x"+want)
		}
	}
}
