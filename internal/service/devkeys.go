package service

import (
	"errors"
	"os"

	"github.com/acme/payments/internal/config"
	"github.com/acme/payments/internal/encryption"
)

// UseDevKeysIfPresent points cfg at the development keys `starter dev`
// created under the data dir when no keys are configured, so CLI commands
// run next to `make dev` need no setup. It never creates keys.
func UseDevKeysIfPresent(cfg *config.Config) error {
	if cfg.Keys != "" || cfg.KeysFile != "" {
		return nil
	}
	keysFile, bidxFile := encryption.DevKeyFiles(cfg.DevKeysDir())
	if _, err := os.Stat(keysFile); err != nil {
		return errors.New("no encryption keys: set PAYMENTS_KEYS or PAYMENTS_KEYS_FILE (or run `starter dev` once for development keys)")
	}
	cfg.KeysFile = keysFile
	if cfg.BlindIndexKey == "" {
		cfg.BlindIndexKeyFile = bidxFile
	}
	return nil
}
