package sdk

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// roundRobin spreads calls over every address the target resolves to, and
// a call whose node is down goes to another: what makes a retry after a
// killed node land elsewhere.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// dialTarget turns New's addr into a gRPC target and the options it needs.
// A comma-separated list of host:port ("vigil-1:9095,vigil-2:9095") is
// resolved to itself; anything else is a gRPC target as is ("host:port",
// "dns:///vigil:9095").
func dialTarget(addr string) (string, []grpc.DialOption, error) {
	opts := []grpc.DialOption{grpc.WithDefaultServiceConfig(roundRobin)}
	if !strings.Contains(addr, ",") {
		return addr, opts, nil
	}
	var addrs []resolver.Address
	for a := range strings.SplitSeq(addr, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return "", nil, fmt.Errorf("address %q in the list: %w", a, err)
		}
		// ServerName: TLS checks each node's certificate against its own
		// host, not against the list's made-up authority.
		addrs = append(addrs, resolver.Address{Addr: a, ServerName: host})
	}
	r := manual.NewBuilderWithScheme("vigil-list")
	r.InitialState(resolver.State{Addresses: addrs})
	return r.Scheme() + ":///nodes", append(opts, grpc.WithResolvers(r)), nil
}
