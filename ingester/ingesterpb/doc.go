// Package ingesterpb holds the internal gRPC API of ingesters: the .proto,
// the generated code (make proto), conversions between wire and model
// types, the error ↔ status mapping used on both sides, and the client
// constructor. Distributors and queriers import this package, never
// ingester itself.
package ingesterpb
