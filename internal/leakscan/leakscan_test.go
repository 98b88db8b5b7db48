package leakscan

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

func TestScanFindsPlainAndHexSpellings(t *testing.T) {
	s := New(map[string]string{"card": "4000056655665556", "none": ""})
	s.Scan("clean", []byte("nothing to see: 4000 **** 5556"))
	if len(s.Hits) != 0 {
		t.Fatalf("hits in clean data: %v", s.Hits)
	}
	s.Scan("plain", []byte(`{"details":"4000056655665556"}`))
	s.Scan("hex", []byte(`\x`+hex.EncodeToString([]byte("..4000056655665556.."))))
	if len(s.Hits) != 1 || s.Hits[0].Where != "plain" {
		t.Fatalf("without Hex: %v", s.Hits)
	}
	s.Hex = true
	s.Scan("hex", []byte(`\x`+hex.EncodeToString([]byte("..4000056655665556.."))))
	if len(s.Hits) != 2 || s.Hits[1].Where != "hex" {
		t.Fatalf("with Hex: %v", s.Hits)
	}
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "a.log"), []byte("ok"), 0o600)
	_ = os.MkdirAll(filepath.Join(dir, "sub"), 0o700)
	_ = os.WriteFile(filepath.Join(dir, "sub", "b.log"), []byte("card 4000056655665556"), 0o600)
	if n, err := s.Dir(dir); err != nil || n != 2 || len(s.Hits) != 3 {
		t.Fatalf("Dir: %d files, %v, hits %v", n, err, s.Hits)
	}
}
