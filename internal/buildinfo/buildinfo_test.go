package buildinfo

import "testing"

func TestString(t *testing.T) {
	if got := (Info{Version: "v1.2.3", Revision: "0123456789abcdef", Modified: true, GoVersion: "go1.26.8"}).String(); got != "v1.2.3 (rev 0123456789ab, modified, go1.26.8)" {
		t.Fatalf("String: %q", got)
	}
	if got := (Info{Version: "(devel)"}).String(); got != "(devel)" {
		t.Fatalf("String: %q", got)
	}
	if i := Read(); i.Module == "" || i.Version == "" {
		t.Fatalf("Read: %+v", i)
	}
}
