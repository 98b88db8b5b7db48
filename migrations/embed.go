// Package migrations holds the versioned SQL schema of the service, embedded
// so every binary can apply it (goose format: -- +goose Up / Down).
package migrations

import "embed"

// FS holds every *.sql migration, applied in file-name order.
//
//go:embed *.sql
var FS embed.FS
