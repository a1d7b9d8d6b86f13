// Package api serves Vigil's HTTP interface: the Prometheus query API
// (/api/v1/query, query_range, series, labels, label values, status and
// metadata), the push protocols (Prometheus remote write 1.0, Prometheus
// text exposition and OpenMetrics import, InfluxDB line protocol), and the
// operational endpoints (/metrics, /-/healthy, /-/ready).
//
// The package knows no other Vigil component. It depends on interfaces it
// defines or borrows from Prometheus:
//
//   - Pusher stores a decoded batch (the distributor implements it);
//   - storage.Queryable and promql.QueryEngine answer queries (the querier);
//   - StatusReader reports cardinality for /api/v1/status/tsdb.
//
// Data flow: a push request is read with size limits, decoded by one of the
// pure decoders (DecodeRemoteWrite, ParseText, ParseLineProtocol) into
// []model.Series, and handed to the Pusher. Errors become HTTP status codes
// in one place, writeStatus: request-level problems refuse the whole
// request, per-sample problems reported in model.PushResult give a 400 that
// names them while the valid part stays stored.
//
// Remote write is decoded straight from the protobuf wire format
// (protowire) rather than through prompb's generated structs, five times
// faster with a fifteenth of the allocations; tests and fuzzing hold it to
// prompb's answers. Text exposition is parsed by Prometheus' textparse;
// line protocol by hand.
//
// Query responses are encoded by hand (json.go) so that they are
// byte-for-byte what Prometheus 3.x returns for the same result, without
// importing web/api/v1 and its dependencies.
//
// docs/api.md is the user-facing reference for every endpoint.
package api
