package ingesterpb

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// MaxMessageSize bounds one gRPC message in either direction.
const MaxMessageSize = 64 << 20

// Conn is a client of one ingester and the connection behind it.
type Conn struct {
	IngesterClient
	cc *grpc.ClientConn
}

// Dial returns a client for the ingester at addr. It does not block: the
// connection is made on first use and re-made after failures.
func Dial(addr string) (*Conn, error) {
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize), grpc.ForceCodec(Codec{})),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// Ingesters restart in seconds; gRPC's default reconnect backoff
		// grows to two minutes, which would keep a returned ingester
		// unused long after the ring saw it alive.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("dial ingester %s: %w", addr, err)
	}
	return &Conn{IngesterClient: NewIngesterClient(cc), cc: cc}, nil
}

// ServerOptions are the options an ingester's gRPC server needs to match
// clients made by Dial.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.ForceServerCodec(Codec{}),
	}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.cc.Close() }

// Pool keeps one connection per ingester address, made on first use. Safe
// for concurrent use.
type Pool struct {
	mu    sync.Mutex // protects conns
	conns map[string]*Conn
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{conns: map[string]*Conn{}} }

// Get returns the client for addr, dialling it the first time.
func (p *Pool) Get(addr string) (IngesterClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	if p.conns == nil {
		return nil, fmt.Errorf("dial ingester %s: pool is closed", addr)
	}
	c, err := Dial(addr)
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// ResetBackoff makes the connection to addr, if any, reconnect now
// instead of after its backoff: call it when the ring sees the ingester
// alive again.
func (p *Pool) ResetBackoff(addr string) {
	p.mu.Lock()
	c := p.conns[addr]
	p.mu.Unlock()
	if c != nil {
		c.cc.ResetConnectBackoff()
	}
}

// Retain closes the connections to addresses not in keep (ingesters that
// left the ring).
func (p *Pool) Retain(keep map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		if !keep[addr] {
			c.Close()
			delete(p.conns, addr)
		}
	}
}

// Close closes every connection; Get fails afterwards.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	return nil
}

// Distributor returns a client of the Distributor service on the same
// connection (for nodes that push to a distributor, like collectors).
func (c *Conn) Distributor() DistributorClient { return NewDistributorClient(c.cc) }
