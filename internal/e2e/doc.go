// Package e2e holds the service's end-to-end tests: the HTTP API, the
// worker, an in-process Temporal server and MariaDB, driven as a client
// and a payment gateway would drive them, with signed callbacks.
package e2e
