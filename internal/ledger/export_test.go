package ledger

// SetBulkMinRows sets the number of rows from which writes use LOAD DATA
// and returns a function restoring the previous value. Tests use it to run
// the same batches through both write paths; they must not run in
// parallel with other tests while it is changed.
func SetBulkMinRows(n int) (restore func()) {
	old := bulkMinRows
	bulkMinRows = n
	return func() { bulkMinRows = old }
}

// BulkMinRows is the current threshold.
func BulkMinRows() int { return bulkMinRows }

// BulkCounters reports how many LOAD DATA statements ran and how many bulk
// writes were rolled back and decided again, since the process started.
func BulkCounters() (loads, redecided int64) {
	return bulkLoads.Load(), bulkRedecided.Load()
}

// SetAfterInboxPeek makes every attempt call f right after it looked at
// the inbox.
func SetAfterInboxPeek(f func()) (restore func()) {
	afterInboxPeek = f
	return func() { afterInboxPeek = nil }
}
