package devserver

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Port is an address the development stack listens on, with the setting
// that chooses it.
type Port struct {
	// Name says what listens there and how to move it, e.g.
	// "the embedded Temporal frontend (TEMPORAL_ADDRESS)".
	Name    string
	Address string
}

// CheckPorts makes sure every address can be listened on now, so that a
// clash fails the start-up with one line naming the address before
// anything is written or started. (The embedded server's own other ports
// are chosen free by FreePorts.)
func CheckPorts(ports ...Port) error {
	for _, p := range ports {
		ln, err := net.Listen("tcp", p.Address)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%s is already in use, needed by %s: stop what listens there or choose another address", p.Address, p.Name)
			}
			return fmt.Errorf("cannot listen on %s for %s: %w", p.Address, p.Name, err)
		}
		ln.Close()
	}
	return nil
}
