// Package leakscan searches where data comes to rest (log files, database
// files, MySQL tables, a PostgreSQL dump, HTTP bodies) for known sentinel
// values, for the tests that prove no secret or customer value is stored
// or logged in plain text (SPEC section 4).
package leakscan

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/jmoiron/sqlx"
)

// Hit is one sentinel found somewhere.
type Hit struct {
	Where, Needle string
	Context       []byte // the bytes around it
}

func (h Hit) String() string {
	return fmt.Sprintf("%s holds the %s: …%q…", h.Where, h.Needle, h.Context)
}

// Scanner looks for its needles in whatever it is given and keeps the hits.
type Scanner struct {
	needles map[string][]byte
	names   []string
	// Hex also looks for each needle hex-encoded, as PostgreSQL dumps
	// bytea columns.
	Hex   bool
	Hits  []Hit
	Bytes int64 // how much was scanned
	Items int   // how many files, rows or bodies were scanned
}

// New returns a scanner for needles (name → value); empty values are
// ignored.
func New(needles map[string]string) *Scanner {
	s := &Scanner{needles: map[string][]byte{}}
	for name, v := range needles {
		if v != "" {
			s.needles[name] = []byte(v)
			s.names = append(s.names, name)
		}
	}
	sort.Strings(s.names)
	return s
}

// Scan searches data, saying where it came from.
func (s *Scanner) Scan(where string, data []byte) {
	s.Bytes += int64(len(data))
	s.Items++
	for _, name := range s.names {
		n := s.needles[name]
		forms := [][]byte{n}
		if s.Hex {
			forms = append(forms, []byte(hex.EncodeToString(n)))
		}
		for _, f := range forms {
			if i := bytes.Index(data, f); i >= 0 {
				from, to := max(i-80, 0), min(i+len(f)+80, len(data))
				s.Hits = append(s.Hits, Hit{Where: where, Needle: name, Context: bytes.Clone(data[from:to])})
			}
		}
	}
}

// Dir scans every file under dir and returns how many it read.
func (s *Scanner) Dir(dir string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		s.Scan(path, b)
		return nil
	})
	return n, err
}

// MySQL scans every column of every row of every table of db's current
// database and returns how many rows it read.
func (s *Scanner) MySQL(ctx context.Context, db *sqlx.DB) (int, error) {
	var tables []string
	if err := db.SelectContext(ctx, &tables, `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`); err != nil {
		return 0, err
	}
	n := 0
	for _, table := range tables {
		rows, err := db.QueryxContext(ctx, "SELECT * FROM `"+table+"`")
		if err != nil {
			return n, err
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals, err := rows.SliceScan()
			if err != nil {
				rows.Close()
				return n, err
			}
			n++
			for i, v := range vals {
				switch v := v.(type) {
				case []byte:
					s.Scan(table+"."+cols[i], v)
				case string:
					s.Scan(table+"."+cols[i], []byte(v))
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Postgres scans a pg_dump of database (data only, bytea in hex, which Hex
// covers) on the server at host:port as user.
func (s *Scanner) Postgres(ctx context.Context, host string, port int, user, database string) error {
	s.Hex = true
	out, err := exec.CommandContext(ctx, "pg_dump", "--data-only", "-h", host, "-p", fmt.Sprint(port), "-U", user, database).Output()
	if err != nil {
		return fmt.Errorf("pg_dump %s: %w", database, err)
	}
	s.Scan("PostgreSQL database "+database, out)
	return nil
}
