package records

import "strings"

// Spreadsheets run a CSV cell that starts with =, +, - or @ (and, in some,
// a tab or CR) as a formula: an exported customer email "=HYPERLINK(…)"
// would be code on whoever opens the file (OWASP "CSV injection"). Files
// this service writes prefix such a text value with a single quote, which
// spreadsheets show as text, and the CSV reader removes that quote again,
// so a downloaded file imports back to the same values.
//
// To keep that exact, a value that starts with a quote is prefixed too:
// NeutralizeFormula and UnneutralizeFormula are inverse for every value,
// and a quote before any other character is read as it stands.

// FormulaColumn reports whether a column's CSV values are neutralised:
// text, which is every column but the amounts and times, so that numbers
// stay numbers in a spreadsheet ("-12.30"). Those are checked as amounts
// and times, so no formula reaches them.
func FormulaColumn(col string) bool {
	return !strings.HasSuffix(col, "_amount") && !strings.HasSuffix(col, "_at")
}

// formulaStart reports whether a cell starting with c needs the prefix.
func formulaStart(c byte) bool {
	switch c {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return true
	}
	return false
}

// NeutralizeFormula returns v as a CSV cell that no spreadsheet runs: v
// with a leading single quote when it starts with =, +, -, @, tab, CR or a
// quote, v itself otherwise.
func NeutralizeFormula(v string) string {
	if v != "" && formulaStart(v[0]) {
		return "'" + v
	}
	return v
}

// NeedsFormulaQuote reports whether NeutralizeFormula changes v.
func NeedsFormulaQuote(v []byte) bool { return len(v) > 0 && formulaStart(v[0]) }

// UnneutralizeFormula undoes NeutralizeFormula: it drops a leading single
// quote that precedes one of the characters NeutralizeFormula guards.
func UnneutralizeFormula(s string) string {
	if len(s) >= 2 && s[0] == '\'' && formulaStart(s[1]) {
		return s[1:]
	}
	return s
}
