// Package workflows holds the service's Temporal workflows. They read as the
// business process and do no I/O themselves: every side effect is an
// activity from package activities.
package workflows

// TaskQueue is the one task queue every workflow and activity uses.
const TaskQueue = "payments"

// ImportWorkflowID is the id of the workflow importing import importID.
// Ids derive from business ids only; they never carry customer data.
func ImportWorkflowID(importID string) string { return "import/" + importID }

// OrderPaymentWorkflowID is the id of order orderID's payment lifecycle.
func OrderPaymentWorkflowID(orderID string) string { return "order-payment/" + orderID }
