package ingesterpb

import (
	"fmt"
	"time"

	"google.golang.org/grpc"
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
