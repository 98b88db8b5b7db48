// Package migrations holds the versioned schema of the service, embedded so
// every binary can apply it: SQL files (goose format: -- +goose Up / Down)
// and the few steps written in Go (see Go).
package migrations

import "embed"

// FS holds every *.sql migration, applied in file-name order.
//
//go:embed *.sql
var FS embed.FS
