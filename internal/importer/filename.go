package importer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFileNameRunes caps a stored file name (import_jobs.file_name is
// VARCHAR(255)).
const MaxFileNameRunes = 255

// CleanFileName makes a user-chosen file name fit to store and show: only
// its last path element (either slash), without control or format
// characters (newlines, escapes, bidirectional overrides) or invalid UTF-8,
// trimmed of spaces and cut to MaxFileNameRunes. It returns "" when nothing
// is left. The name is shown, never used as a path, an id or a search
// attribute.
func CleanFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	n := 0
	for _, r := range name {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		if n == MaxFileNameRunes {
			break
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}
