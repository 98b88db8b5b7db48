package encryption

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func skipOnWindows(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("Unix permission bits")
	}
}

func TestEnsureDevKeys(t *testing.T) {
	skipOnWindows(t)
	dir := filepath.Join(t.TempDir(), "nested", "dev-keys")

	keysFile, biFile, created, err := EnsureDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("first call: created = false")
	}
	if keysFile != filepath.Join(dir, "keys.txt") || biFile != filepath.Join(dir, "blind-index.key") {
		t.Errorf("paths = %q, %q", keysFile, biFile)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	for _, p := range []string{keysFile, biFile} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %04o, want 0600", p, fi.Mode().Perm())
		}
	}

	keysData, _ := os.ReadFile(keysFile)
	biData, _ := os.ReadFile(biFile)
	if !regexp.MustCompile(`^dev1:[A-Za-z0-9+/]{43}=\n$`).Match(keysData) {
		t.Errorf("keys.txt has an unexpected format (%d bytes)", len(keysData))
	}
	if !regexp.MustCompile(`^[A-Za-z0-9+/]{43}=\n$`).Match(biData) {
		t.Errorf("blind-index.key has an unexpected format (%d bytes)", len(biData))
	}
	if strings.TrimSpace(string(keysData))[5:] == strings.TrimSpace(string(biData)) {
		t.Error("encryption and blind index keys are equal")
	}

	k, err := LoadKeyring("", keysFile)
	if err != nil {
		t.Fatal(err)
	}
	if k.PrimaryID() != "dev1" {
		t.Errorf("primary = %q, want dev1", k.PrimaryID())
	}
	ct, err := k.Encrypt([]byte("dev"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadBlindIndexFile(biFile)
	if err != nil {
		t.Fatal(err)
	}
	idx := b.Email("dev@example.com")

	// Second call reuses the files untouched.
	keysFile2, biFile2, created, err := EnsureDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if created || keysFile2 != keysFile || biFile2 != biFile {
		t.Errorf("second call: created=%v paths %q %q", created, keysFile2, biFile2)
	}
	keysData2, _ := os.ReadFile(keysFile)
	biData2, _ := os.ReadFile(biFile)
	if string(keysData2) != string(keysData) || string(biData2) != string(biData) {
		t.Error("second call changed the key files")
	}
	k2, err := LoadKeyring("", keysFile2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Decrypt(ct, nil); err != nil {
		t.Errorf("data encrypted before the second call: %v", err)
	}
	b2, _ := ReadBlindIndexFile(biFile2)
	if string(b2.Email("dev@example.com")) != string(idx) {
		t.Error("blind index changed across calls")
	}
}

func TestEnsureDevKeysStricterModeAccepted(t *testing.T) {
	skipOnWindows(t)
	dir := t.TempDir()
	keysFile, _, _, err := EnsureDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keysFile, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, _, created, err := EnsureDevKeys(dir); err != nil || created {
		t.Errorf("0400 keys file: created=%v, err=%v; want reuse", created, err)
	}
}

func TestEnsureDevKeysRefusesLooseModes(t *testing.T) {
	skipOnWindows(t)
	for _, name := range []string{"keys.txt", "blind-index.key"} {
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
			dir := t.TempDir()
			if _, _, _, err := EnsureDevKeys(dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, name)
			before, _ := os.ReadFile(path)
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, _, _, err := EnsureDevKeys(dir)
			if err == nil {
				t.Errorf("%s with mode %04o: no error", name, mode)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, "chmod 600") ||
				!strings.Contains(msg, fmt.Sprintf("%04o", uint32(mode))) {
				t.Errorf("%s with mode %04o: error %q should name the path, the mode and chmod 600", name, mode, msg)
			}
			if strings.Contains(msg, strings.TrimSpace(string(before))) {
				t.Errorf("error leaks the key: %q", msg)
			}
			after, _ := os.ReadFile(path)
			if string(after) != string(before) {
				t.Errorf("%s was modified", name)
			}
		}
	}
}

func TestEnsureDevKeysRefusesHalfAPair(t *testing.T) {
	skipOnWindows(t)
	for _, missing := range []string{"keys.txt", "blind-index.key"} {
		dir := t.TempDir()
		if _, _, _, err := EnsureDevKeys(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, missing)); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := EnsureDevKeys(dir); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("%s missing: err = %v, want one naming it", missing, err)
		}
		if _, err := os.Stat(filepath.Join(dir, missing)); err == nil {
			t.Errorf("%s was recreated next to the old half of the pair", missing)
		}
	}
}

func TestEnsureDevKeysRejectsNonRegularFile(t *testing.T) {
	skipOnWindows(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "keys.txt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := EnsureDevKeys(dir); err == nil {
		t.Error("directory named keys.txt: no error")
	}
}
