package devserver

import (
	"os"
	"path/filepath"
	"testing"

	"go.temporal.io/server/schema/sqlite"
)

// TestSQLiteFileIsWAL checks that the embedded server's store really is in
// WAL mode: the plugin silently ignores attributes it takes for unknown
// pragmas, and a rollback journal costs the lifecycle path most of its
// throughput. Bytes 18 and 19 of the file header are 2 in WAL mode, 1 with
// a rollback journal.
func TestSQLiteFileIsWAL(t *testing.T) {
	file := filepath.Join(t.TempDir(), "temporal.db")
	if err := sqlite.SetupSchema(sqliteConfig(file)); err != nil {
		t.Fatalf("set up schema: %v", err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 20 {
		t.Fatalf("%s: %d bytes, no SQLite header", file, len(b))
	}
	if b[18] != 2 || b[19] != 2 {
		t.Fatalf("%s: file format versions %d/%d, want 2/2 (WAL)", file, b[18], b[19])
	}
}
