package bench

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTransferCountAndSameFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a := write("a.csv", "h1,h2\n1,2\n3,4\n")
	var tr transfer
	if err := tr.count(a); err != nil || tr.rows != 2 || tr.bytes != 14 {
		t.Fatalf("count: rows %d bytes %d err %v", tr.rows, tr.bytes, err)
	}
	if err := tr.count(write("short.csv", "h1,h2\n1,2\n3,")); err == nil {
		t.Fatal("a file without its last newline counted as complete")
	}
	for _, c := range []struct {
		content string
		same    bool
		at      int64
	}{
		{"h1,h2\n1,2\n3,4\n", true, 0},
		{"h1,h2\n1,2\n3,5\n", false, 12},
		{"h1,h2\n1,2\n", false, 10},
		{"h1,h2\n1,2\n3,4\n5,6\n", false, 14},
	} {
		same, at, err := sameFile(a, write("b.csv", c.content))
		if err != nil || same != c.same || at != c.at {
			t.Errorf("%q: same %v at %d err %v, want %v at %d", c.content, same, at, err, c.same, c.at)
		}
	}
}
