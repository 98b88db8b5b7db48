package dbtest

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"

	"github.com/acme/payments/internal/database"
)

// RoundTrips counts the request/response exchanges between the service and
// the MySQL server on the connections of one DSN: every time a connection
// writes after it has read (or writes first), one more exchange begins. A
// query is one, a LOAD DATA LOCAL two (the statement, then the file), a
// transaction's BEGIN and COMMIT one each.
type RoundTrips struct{ n atomic.Int64 }

// Load returns the exchanges counted so far.
func (r *RoundTrips) Load() int64 { return r.n.Load() }

var countedNets atomic.Int64

// CountRoundTrips returns dsn rewritten to dial through a counter, and the
// counter. Connections the pool already holds are not counted; dial a new
// pool with the returned DSN.
func CountRoundTrips(dsn string) (string, *RoundTrips, error) {
	cfg, err := database.Config(dsn)
	if err != nil {
		return "", nil, err
	}
	rt := &RoundTrips{}
	network := cfg.Net
	if network == "" {
		network = "tcp"
	}
	name := fmt.Sprintf("counted%d", countedNets.Add(1))
	var d net.Dialer
	mysql.RegisterDialContext(name, func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countedConn{Conn: c, rt: rt}, nil
	})
	cfg.Net = name
	return cfg.FormatDSN(), rt, nil
}

// countedConn is used by one goroutine at a time, as the driver uses a
// connection.
type countedConn struct {
	net.Conn
	rt      *RoundTrips
	writing bool
}

func (c *countedConn) Write(p []byte) (int, error) {
	if !c.writing {
		c.writing = true
		c.rt.n.Add(1)
	}
	return c.Conn.Write(p)
}

func (c *countedConn) Read(p []byte) (int, error) {
	c.writing = false
	return c.Conn.Read(p)
}
