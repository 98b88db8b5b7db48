package encryption

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

const (
	devKeysFileName       = "keys.txt"
	devBlindIndexFileName = "blind-index.key"
	devKeyID              = "dev1"
)

// DevKeyFiles names the two files EnsureDevKeys keeps in dir.
func DevKeyFiles(dir string) (keysFile, blindIndexFile string) {
	return filepath.Join(dir, devKeysFileName), filepath.Join(dir, devBlindIndexFileName)
}

// EnsureDevKeys makes sure dir holds a development key file (keys.txt, for
// PAYMENTS_KEYS_FILE) and blind index key file (blind-index.key), creating
// dir (mode 0700) and fresh random keys if neither file exists. Only
// `starter dev` should call it; production keys come from the environment.
//
// Existing files are reused (created=false) provided they have no group or
// other permission bits (0600 or stricter); otherwise the error names the
// file and its mode and suggests chmod 600. New files are created with O_EXCL and mode 0600 from the
// start, so the keys are never briefly world-readable and a concurrent or
// existing file is never overwritten. If only one of the two files exists it
// returns an error instead of silently replacing half of the pair. The keys
// are never logged or printed.
func EnsureDevKeys(dir string) (keysFile, blindIndexFile string, created bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", false, fmt.Errorf("encryption: creating dev key directory: %w", err)
	}
	keysFile = filepath.Join(dir, devKeysFileName)
	blindIndexFile = filepath.Join(dir, devBlindIndexFileName)

	keysExist, err := checkSecretFile(keysFile)
	if err != nil {
		return "", "", false, err
	}
	biExist, err := checkSecretFile(blindIndexFile)
	if err != nil {
		return "", "", false, err
	}
	switch {
	case keysExist && biExist:
		return keysFile, blindIndexFile, false, nil
	case keysExist || biExist:
		have, missing := keysFile, blindIndexFile
		if biExist {
			have, missing = blindIndexFile, keysFile
		}
		return "", "", false, fmt.Errorf("encryption: found %s but not %s; restore the missing file, "+
			"or delete %s to generate a new pair (dev data encrypted under the old keys becomes unreadable)",
			have, missing, have)
	}

	key, err := randomKey()
	if err != nil {
		return "", "", false, err
	}
	biKey, err := randomKey()
	if err != nil {
		return "", "", false, err
	}
	if err := writeNewSecretFile(keysFile, devKeyID+":"+base64.StdEncoding.EncodeToString(key)+"\n"); err != nil {
		return "", "", false, err
	}
	if err := writeNewSecretFile(blindIndexFile, base64.StdEncoding.EncodeToString(biKey)+"\n"); err != nil {
		// Don't leave half a pair behind: the next run would refuse it.
		_ = os.Remove(keysFile)
		return "", "", false, err
	}
	return keysFile, blindIndexFile, true, nil
}

// checkSecretFile reports whether path exists and, if so, that it is a
// regular file with no group or other permission bits.
func checkSecretFile(path string) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("encryption: checking key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("encryption: key file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits; Go reports 0666 for every file.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return false, fmt.Errorf("encryption: key file %s has mode %04o, which lets other users access it; "+
			"want 0600 or stricter (run: chmod 600 %s)", path, uint32(perm), path)
	}
	return true, nil
}

// writeNewSecretFile creates path with mode 0600 (O_EXCL: never reuse or
// overwrite an existing file or symlink) and writes content to it. The
// content is secret and is kept out of errors.
func writeNewSecretFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("encryption: creating key file: %w", err)
	}
	_, werr := f.WriteString(content)
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("encryption: writing key file %s: %w", path, err)
	}
	return nil
}
