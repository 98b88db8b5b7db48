package activities

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/acme/payments/internal/encryption"
	"github.com/acme/payments/internal/staging"
)

// ErrTypeStagedFile fails an import whose staged file no retry can read:
// it is gone, or it was sealed under a key this process does not hold (or
// altered). Retrying would only repeat the error until someone looks.
const ErrTypeStagedFile = "StagedFileUnreadable"

// stagedFileError returns err as a non-retryable ErrTypeStagedFile error
// when it is one of those, saying what to do, and err unchanged otherwise
// (a store that is down for a while is worth retrying).
func stagedFileError(importID string, err error) error {
	switch {
	case errors.Is(err, staging.ErrNotFound):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"import %s: its staged file is gone (deleted after PAYMENTS_STAGING_RETENTION, or by hand); upload the file again", importID),
			ErrTypeStagedFile, nil)
	case errors.Is(err, encryption.ErrUnknownKey), errors.Is(err, encryption.ErrDecrypt):
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"import %s: its staged file cannot be decrypted with the configured keys (sealed under a key PAYMENTS_KEYS lacks, or altered); restore the key or upload the file again", importID),
			ErrTypeStagedFile, nil)
	}
	return err
}
