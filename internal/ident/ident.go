// Package ident is the one rule order and payment ids follow, wherever they
// enter: import files, the HTTP API and the ledger, and the migration that
// checks the ids already stored.
package ident

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLen is the longest id in bytes: order_id and payment_id are
// VARCHAR(64), and counting bytes keeps every valid id within it.
const MaxLen = 64

// Check returns what is wrong with id, or "": an id is 1 to MaxLen bytes
// of valid UTF-8 without white space or control characters. White space
// matters beyond looks: the columns' PAD SPACE collation would make "A1"
// and "A1 " the same key, and without spaces or characters below U+0020 Go's
// byte order is the collation's order, which the ledger's range reads and
// lock order rely on. The message names the id clipped, never other data.
func Check(id string) string {
	switch {
	case id == "":
		return "is empty"
	case len(id) > MaxLen:
		return fmt.Sprintf("is longer than %d bytes", MaxLen)
	case !utf8.ValidString(id):
		return "is not valid UTF-8"
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "holds white space or control characters"
	}
	return ""
}
