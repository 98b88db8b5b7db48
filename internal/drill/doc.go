// Package drill holds the crash drills: integration tests that run the
// service as it is deployed past one machine (internal/cluster: the real
// Temporal server process on PostgreSQL, several worker processes, the API,
// shared S3 staging) and inject real faults. Run them with make drill.
package drill
