package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/floorlink/floorlink/simulators/line"
	simopcua "github.com/floorlink/floorlink/simulators/opcua"
)

// opcuaFlags are the OPC UA front end's flags.
type opcuaFlags struct {
	addr   string
	hosts  []string
	remove []string
}

func (o *opcuaFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&o.addr, "opcua", "", "OPC UA listen address (security None, anonymous), e.g. 127.0.0.1:4840; port 0 picks a free port; empty: no OPC UA")
	fs.Func("opcua-host", "`NAME` clients use to reach the OPC UA server besides 127.0.0.1, localhost and the listen host (repeatable)", func(v string) error {
		o.hosts = append(o.hosts, v)
		return nil
	})
	fs.Func("opcua-remove", "`NODE` to leave out of the OPC UA address space, e.g. Line1.M1.Temperature: clients get BadNodeIdUnknown (repeatable)", func(v string) error {
		o.remove = append(o.remove, v)
		return nil
	})
}

// listen builds the OPC UA server over l (guarded by lk) and its listener; nil, nil without
// --opcua.
func (o *opcuaFlags) listen(l *line.Line, lk sync.Locker, log *slog.Logger) (*simopcua.Server, net.Listener, error) {
	if o.addr == "" {
		return nil, nil, nil
	}
	srv, err := simopcua.New(simopcua.Options{Line: l, Locker: lk, Hosts: o.hosts, Logger: log.With("server", "opcua")})
	if err != nil {
		return nil, nil, err
	}
	for _, n := range o.remove {
		if !srv.RemoveNode(n) {
			return nil, nil, fmt.Errorf("--opcua-remove %s: no such node (want e.g. Line1.M1.Temperature)", n)
		}
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen opcua: %w", err)
	}
	return srv, ln, nil
}
