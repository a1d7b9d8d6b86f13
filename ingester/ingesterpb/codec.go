package ingesterpb

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Codec marshals this package's messages with the reflection-free code
// vtprotobuf generates (ingester_vtproto.pb.go), several times faster and
// with fewer allocations than the default codec; other messages fall back
// to proto. Servers use it through grpc.ForceServerCodec, clients through
// Dial. The wire format is plain protobuf either way.
type Codec struct{}

type vtMessage interface {
	MarshalVT() ([]byte, error)
	UnmarshalVT([]byte) error
}

// Marshal implements encoding.Codec.
func (Codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(vtMessage); ok {
		return m.MarshalVT()
	}
	if m, ok := v.(proto.Message); ok {
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("marshal %T: not a protobuf message", v)
}

// Unmarshal implements encoding.Codec.
func (Codec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(vtMessage); ok {
		return m.UnmarshalVT(data)
	}
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("unmarshal into %T: not a protobuf message", v)
}

// Name implements encoding.Codec.
func (Codec) Name() string { return "proto" }
